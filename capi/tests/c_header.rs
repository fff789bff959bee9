//! The checked-in C header must equal the one cbindgen generates from the sources.

#[test]
fn checked_in_header_matches_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/shmprim.h"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../include/shmprim.h");
    if std::env::var_os("SHMPRIM_BLESS").is_some() {
        std::fs::write(path, generated).expect("write include/shmprim.h");
    }
    let checked_in = std::fs::read_to_string(path).expect("include/shmprim.h exists");
    assert!(
        checked_in == generated,
        "include/shmprim.h is stale: it differs from the header cbindgen generates from capi/src/.\n\
         Refresh it with:  SHMPRIM_BLESS=1 cargo test -p shmprim-capi --test c_header"
    );
}

#[test]
fn header_declares_the_foundation_api() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/shmprim.h"))
            .unwrap();
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
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/shmprim.h"))
            .unwrap();
    let define = |part: &str| {
        let key = format!("#define SHMPRIM_VERSION_{part} ");
        let line = header.lines().find(|l| l.starts_with(&key));
        line.unwrap_or_else(|| panic!("include/shmprim.h lacks {key:?}"))[key.len()..]
            .trim()
            .to_owned()
    };
    assert_eq!(define("MAJOR"), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(define("MINOR"), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(define("PATCH"), env!("CARGO_PKG_VERSION_PATCH"));
}

/// The names of the functions the header declares, in order, each with
/// whether a doc comment (`*/`) ends on the line before its declaration.
fn declared_functions(header: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut prev = "";
    for line in header.lines() {
        let declaration = !line.starts_with([' ', '#', '*', '/']) && !line.starts_with("typedef");
        if let Some(paren) = line.find('(').filter(|_| declaration) {
            // The identifier just before the first parenthesis.
            let name: String = line[..paren]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.starts_with("shmprim_") {
                out.push((name, prev.trim_end().ends_with("*/")));
            }
        }
        if !line.trim().is_empty() {
            prev = line;
        }
    }
    out
}

#[test]
fn every_function_is_declared_once_with_a_doc_comment() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/shmprim.h"))
            .unwrap();
    let functions = declared_functions(&header);
    assert!(functions.len() > 100, "found only {}", functions.len());
    let mut seen = std::collections::HashSet::new();
    for (name, documented) in &functions {
        assert!(seen.insert(name.clone()), "{name} is declared twice");
        assert!(documented, "{name} has no doc comment in the header");
    }
}

#[test]
fn header_declares_every_object_of_the_c_api() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/shmprim.h"))
            .unwrap();
    let objects = [
        "segment",
        "mutex",
        "rmutex",
        "semaphore",
        "event",
        "condvar",
        "barrier",
        "value",
        "array",
        "pipe",
        "queue",
        "byte_queue",
        "spsc",
        "byte_ring",
        "duplex",
    ];
    for object in objects {
        for verb in [
            "create",
            "open",
            "open_or_create",
            "anonymous",
            "close",
            "unlink",
        ] {
            let f = format!("shmprim_{object}_{verb}(");
            assert!(header.contains(&f), "include/shmprim.h lacks {f}");
        }
        let handle = format!("typedef struct shmprim_{object} shmprim_{object};");
        assert!(header.contains(&handle), "lacks the opaque {handle}");
    }
    for object in [
        "mutex",
        "rmutex",
        "semaphore",
        "event",
        "condvar",
        "barrier",
    ] {
        for item in [
            format!("shmprim_{object}_init("),
            format!("#define SHMPRIM_{}_SIZE ", object.to_uppercase()),
            format!("#define SHMPRIM_{}_ALIGN ", object.to_uppercase()),
        ] {
            assert!(header.contains(&item), "include/shmprim.h lacks {item:?}");
        }
    }
}
