//! `include/fasten.h` is what cbindgen makes of this crate today: CI fails
//! when the checked-in header differs from a fresh one.
//! `FASTEN_BLESS=1 cargo test -p fasten-ffi --test header` rewrites it.

#![allow(missing_docs)]

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let path = dir.join("include/fasten.h");
    if std::env::var_os("FASTEN_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/fasten.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/fasten.h is stale: run `FASTEN_BLESS=1 cargo test -p fasten-ffi --test header` and commit it"
    );
}
