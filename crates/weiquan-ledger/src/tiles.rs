//! C2SP tlog-tiles paths: `tile/<L>/<N>[.p/<W>]` for hash tiles and
//! `tile/entries/<N>[.p/<W>]` for entry bundles, where `<N>` is written in
//! three-digit groups (`x001/x234/067`).
//!
//! `tlog_tiles::Tile::path` follows the Go sumdb layout (`tile/8/0/…`,
//! `tile/8/data/…`); this module speaks C2SP's and maps onto it.

/// Tile height: 256 hashes per full tile.
pub const TILE_HEIGHT: u8 = 8;

/// A tile asked for by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileRequest {
    /// Tile level (`None` for an entry bundle).
    pub level: Option<u8>,
    /// Tile index at that level.
    pub index: u64,
    /// Width: 256 for a full tile, fewer for a partial one.
    pub width: u32,
}

/// Parses a C2SP tile path (with or without a leading `/`); `None` if it is not one.
pub fn parse_tile_path(path: &str) -> Option<TileRequest> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let rest = path.strip_prefix("tile/")?;
    let (kind, rest) = rest.split_once('/')?;
    let level = match kind {
        "entries" => None,
        l if l.len() == 1 => Some(l.parse::<u8>().ok().filter(|l| *l < 8)?),
        _ => return None,
    };
    let (n_part, width) = match rest.split_once(".p/") {
        Some((n, w)) => {
            if w.starts_with('0') {
                return None;
            }
            let w: u32 = w.parse().ok().filter(|w| (1..256).contains(w))?;
            (n, w)
        }
        None => (rest, 256),
    };
    let groups: Vec<&str> = n_part.split('/').collect();
    let mut index: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last { *g } else { g.strip_prefix('x')? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    // One tile, one path: `x000/x058/067` spells tile 58,067 with a leading
    // zero group, which C2SP's layout never writes (found by fuzzing).
    let req = TileRequest { level, index, width };
    (tile_path(level, index, width) == path).then_some(req)
}

/// The C2SP path of a tile.
pub fn tile_path(level: Option<u8>, index: u64, width: u32) -> String {
    let mut n = index;
    let mut groups = vec![format!("{:03}", n % 1000)];
    while n >= 1000 {
        n /= 1000;
        groups.push(format!("x{:03}", n % 1000));
    }
    groups.reverse();
    let kind = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let partial = if width == 256 {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("tile/{kind}/{}{partial}", groups.join("/"))
}

/// The entries of an entry bundle, each stored after its length in two
/// bytes, big-endian; `None` when an entry runs past the bundle's end.
pub fn bundle_entries(bundle: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while let [hi, lo, tail @ ..] = rest {
        let (entry, tail) = tail.split_at_checked(usize::from(*hi) << 8 | usize::from(*lo))?;
        entries.push(entry);
        rest = tail;
    }
    // A single byte left over is a length cut in half.
    rest.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for (level, index, width, path) in [
            (Some(0), 0, 256, "tile/0/000"),
            (Some(1), 1234067, 256, "tile/1/x001/x234/067"),
            (None, 5, 17, "tile/entries/005.p/17"),
        ] {
            assert_eq!(tile_path(level, index, width), path);
            assert_eq!(parse_tile_path(path), Some(TileRequest { level, index, width }));
        }
    }

    #[test]
    fn bundles_split_into_their_entries_or_not_at_all() {
        let entries: Vec<Vec<u8>> = vec![b"ab".to_vec(), Vec::new(), vec![b'c'; 300]];
        let bundle: Vec<u8> = (entries.iter())
            .flat_map(|e| (e.len() as u16).to_be_bytes().into_iter().chain(e.iter().copied()))
            .collect();
        assert_eq!(
            bundle_entries(&bundle),
            Some(entries.iter().map(Vec::as_slice).collect())
        );
        assert_eq!(bundle_entries(&[]), Some(Vec::new()));
        assert_eq!(
            bundle_entries(&bundle[..bundle.len() - 1]),
            None,
            "the last entry cut short"
        );
        assert_eq!(bundle_entries(&[0, 1, b'a', 0]), None, "half a length left over");
    }

    #[test]
    fn bad_paths_are_refused() {
        for p in [
            "tile/0/1",
            "tile/0/0001",
            "tile/9/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/001/002",
            "other/0/000",
            // Found by fuzzing: a leading zero group, a second spelling of tile 58,067.
            "/tile/0/x000/x058/067",
            "//tile/0/000",
        ] {
            assert_eq!(parse_tile_path(p), None, "{p}");
        }
    }
}
