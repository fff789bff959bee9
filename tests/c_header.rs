//! The checked-in C header must equal the one cbindgen generates from the sources.

#[test]
fn checked_in_header_matches_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/shmprim.h"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/shmprim.h");
    if std::env::var_os("SHMPRIM_BLESS").is_some() {
        std::fs::write(path, generated).expect("write include/shmprim.h");
    }
    let checked_in = std::fs::read_to_string(path).expect("include/shmprim.h exists");
    assert!(
        checked_in == generated,
        "include/shmprim.h is stale: it differs from the header cbindgen generates from src/ffi/.\n\
         Refresh it with:  SHMPRIM_BLESS=1 cargo test --test c_header"
    );
}

#[test]
fn header_declares_the_foundation_api() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/shmprim.h")).unwrap();
    for item in [
        "#define SHMPRIM_VERSION_MAJOR",
        "SHMPRIM_OK = 0",
        "shmprim_status_str(int32_t status)",
        "shmprim_last_error_message(void)",
        "shmprim_segment_create(",
        "shmprim_segment_open(",
        "shmprim_segment_open_or_create(",
        "shmprim_segment_close(",
        "shmprim_segment_unlink(",
    ] {
        assert!(header.contains(item), "include/shmprim.h lacks {item:?}");
    }
}

#[test]
fn version_macros_match_the_crate_version() {
    let v = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(
        shmprim::ffi::SHMPRIM_VERSION_MAJOR,
        v(env!("CARGO_PKG_VERSION_MAJOR"))
    );
    assert_eq!(
        shmprim::ffi::SHMPRIM_VERSION_MINOR,
        v(env!("CARGO_PKG_VERSION_MINOR"))
    );
    assert_eq!(
        shmprim::ffi::SHMPRIM_VERSION_PATCH,
        v(env!("CARGO_PKG_VERSION_PATCH"))
    );
}
