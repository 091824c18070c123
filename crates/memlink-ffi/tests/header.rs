//! The committed `include/memlink.h` is what cbindgen makes of the crate
//! now: CI fails when a change to the API was not regenerated.
#![cfg(not(windows))]

use std::path::Path;

#[test]
fn committed_header_matches_generated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/memlink.h");
    if std::env::var_os("MEMLINK_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/memlink.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from what cbindgen generates; regenerate it with \
         MEMLINK_BLESS=1 cargo test -p memlink-ffi --test header",
        path.display()
    );
}
