//! With the `bulky` feature, generates many distinct functions (all reachable
//! through a table indexed at run time, so none is optimised away) to make a
//! component of about 2 MB for the install/precompile benchmark. Without the
//! feature the generated file is empty.

use std::fmt::Write as _;

const FUNCTIONS: u64 = 9000;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_BULKY");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let mut src = String::new();
    if std::env::var_os("CARGO_FEATURE_BULKY").is_some() {
        // Constants from a fixed LCG so every function is different.
        let mut s: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s
        };
        for i in 0..FUNCTIONS {
            let (c1, c2, c3, c4, c5, c6) = (next(), next(), next(), next(), next(), next());
            let r1 = next() % 63 + 1;
            let r2 = next() % 63 + 1;
            let m = next() % 97 + 3;
            let k = next() % m;
            let _ = write!(
                src,
                "#[inline(never)]\nfn f{i}(mut x: u64, d: &[u8]) -> u64 {{\n\
                 for (j, b) in d.iter().enumerate() {{\n\
                 x = x.rotate_left({r1}) ^ (*b as u64).wrapping_mul({c1});\n\
                 if x % {m} == {k} {{ x = x.wrapping_add({c2}); }} else {{ x ^= {c3} >> (j & 7); }}\n\
                 }}\n\
                 match x % 5 {{ 0 => x.wrapping_mul({c4}), 1 => x ^ {c5}, 2 => x.rotate_right({r2}), \
                 3 => x / {m}, _ => x.wrapping_sub({c6}) }}\n}}\n"
            );
        }
        src.push_str("static TABLE: [fn(u64, &[u8]) -> u64; ");
        let _ = write!(src, "{FUNCTIONS}] = [");
        for i in 0..FUNCTIONS {
            let _ = write!(src, "f{i},");
        }
        src.push_str("];\n");
        src.push_str(
            "pub fn churn(seed: u64, d: &[u8]) -> u64 { TABLE[(seed % TABLE.len() as u64) as usize](seed, d) }\n",
        );
    }
    let _ = std::fs::write(out.join("bulky.rs"), src);
}
