use super::*;

/// A forked child holds the memfd too, and so does any process it is
/// passed to: without the seal, one `ftruncate` would make every other
/// mapping's access past the new end fault with `SIGBUS`.
#[test]
fn an_anonymous_segment_cannot_be_truncated_or_grown() {
    let seg = Segment::anonymous(8192).unwrap();
    let fd = seg.fd.as_fd();
    for len in [0, HEADER_SIZE as u64, 1 << 20] {
        let err = sys::shm::ftruncate(fd, len).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "ftruncate to {len}");
    }
    // The seals cannot be lifted or added to (`F_SEAL_SEAL`).
    // SAFETY: a valid descriptor; F_ADD_SEALS takes an int.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::F_ADD_SEALS,
            libc::F_SEAL_WRITE,
        )
    };
    assert_eq!(rc, -1);
    seg.write(8000, b"still mapped").unwrap();
    let mut back = [0u8; 12];
    seg.read(8000, &mut back).unwrap();
    assert_eq!(&back, b"still mapped");
}
