//! The fuzz targets on a stable toolchain: every seed of `corpus/<target>`,
//! then a bounded loop of random mutations of them (bit flips, byte edits,
//! splices), `FASTEN_FUZZ_ITERATIONS` per target (default 2,000). Not a
//! coverage-guided fuzzer: a replay and a smoke test of the same entry
//! points cargo-fuzz drives (see `scripts/fuzz.sh`).

use std::path::Path;

/// xorshift64*: deterministic per target, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn mutate(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = pool[rng.below(pool.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                data.insert(i, b"{}[]\":,.\\-0123456789e@/?%=&\n\x00\xff"[rng.below(30)]);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i + 1).min(16);
                data.drain(i..i + n);
            }
            3 => {
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = from + rng.below(other.len() - from + 1);
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[from..to].iter().copied());
                }
            }
            4 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            _ => {
                let i = rng.below(len + 1);
                let byte = data.get(i.saturating_sub(1)).copied().unwrap_or(b'a');
                data.splice(i..i, std::iter::repeat_n(byte, rng.below(64)));
            }
        }
    }
    data
}

#[test]
fn every_target_survives_its_corpus_and_random_mutations() {
    let iterations: usize = std::env::var("FASTEN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for (name, target) in fasten_fuzz::TARGETS {
        let pool = seeds(name);
        for seed in &pool {
            target(seed);
        }
        let mut rng =
            Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
        for _ in 0..iterations {
            let input = mutate(&mut rng, &pool);
            let result = std::panic::catch_unwind(|| target(&input));
            if let Err(panic) = result {
                let path = std::env::temp_dir().join(format!("fasten-fuzz-crash-{name}"));
                std::fs::write(&path, &input).unwrap();
                eprintln!("{name}: crash input written to {}", path.display());
                std::panic::resume_unwind(panic);
            }
        }
        eprintln!(
            "{name}: {} seeds, {iterations} mutations: no crash",
            pool.len()
        );
    }
}
