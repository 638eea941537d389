//! GB 32100-2015 unified social credit code (统一社会信用代码) check.

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// True when `code` is 18 characters of the GB 32100 alphabet with a correct check character.
pub fn is_valid_uscc(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() != 18 {
        return false;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let mut sum = 0;
    for (i, &c) in b[..17].iter().enumerate() {
        match value(c) {
            Some(v) => sum += v * WEIGHTS[i],
            None => return false,
        }
    }
    let check = (31 - sum % 31) % 31;
    value(b[17]) == Some(check)
}

#[cfg(test)]
mod tests {
    use super::is_valid_uscc;

    #[test]
    fn valid_codes_pass() {
        for c in [
            "91330100MA2B000018",
            "91310000MA1K00003F",
            "91440300MA5F00002D",
            "91350100MA3D00008H",
            "91110108MA0E00009A",
        ] {
            assert!(is_valid_uscc(c), "{c}");
        }
    }

    #[test]
    fn bad_codes_fail() {
        for c in [
            "91310000MA1K000040",
            "91330100MA2B000019",
            "9133010MA2B000018",
            "91330100IA2B000018",
            "91330100ma2b000018",
            "",
        ] {
            assert!(!is_valid_uscc(c), "{c}");
        }
    }
}
