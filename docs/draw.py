"""Reference implementation of weiquan-draw-v1 (docs/draw.md), independent of the Rust code.

    python3 docs/draw.py SEED PRIZE_COUNTS ENTRANT...      e.g.  python3 docs/draw.py s 1,2 p1 p2 p3
"""
import hashlib, sys

def leaf(p): return hashlib.sha256(b"\x00" + p.encode()).digest()
def node(a, b): return hashlib.sha256(b"\x01" + a + b).digest()

def tree(h):
    if not h: return hashlib.sha256(b"").digest()
    if len(h) == 1: return h[0]
    k = 1
    while k * 2 < len(h): k *= 2
    return node(tree(h[:k]), tree(h[k:]))

def commitment(seed): return hashlib.sha256(seed.encode()).hexdigest()
def entrants_root(entrants): return tree([leaf(p) for p in entrants])

def draw(seed, entrants, prize_counts):
    root, counter, pool, out = entrants_root(entrants), 0, list(range(len(entrants))), []
    for prize, count in enumerate(prize_counts):
        for _ in range(count):
            if not pool: return out
            n = len(pool)
            while True:
                h = hashlib.sha256(seed.encode() + root + counter.to_bytes(8, "big")).digest()
                counter += 1
                x = int.from_bytes(h[:8], "big")
                if x >= (2**64 % n): break          # reject the low 2^64 mod n values: no modulo bias
            out.append((entrants[pool.pop(x % n)], prize))
    return out

if __name__ == "__main__":
    seed, counts, entrants = sys.argv[1], [int(c) for c in sys.argv[2].split(",")], sys.argv[3:]
    print("commitment", commitment(seed))
    print("root", entrants_root(entrants).hex())
    for p, prize in draw(seed, entrants, counts): print("winner", p, "prize", prize)
