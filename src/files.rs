//! Files other programs read while dnsreg replaces them.

use std::path::Path;

/// Replaces the file at `path` with `bytes`, readable by everyone: written
/// to a temporary file beside it and renamed over it, so a reader sees the
/// old file or the new one whole, never a part. With `modified`, the new
/// file has that modification time from the moment it appears.
pub fn replace_readable(
    path: &Path,
    bytes: &[u8],
    modified: Option<std::time::SystemTime>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // A leading dot and no ending of the file's own: readers that watch a
    // directory (node_exporter's *.prom, avahi's *.service) skip it.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        // Readable by its reader (node_exporter, avahi-daemon), whatever the
        // unit's UMask=0077 made it: nothing in it is secret.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        // No fsync: readers see the old file or the new one whole either
        // way, and after a crash the next write replaces it.
        f.write_all(bytes)?;
        if let Some(t) = modified {
            f.set_modified(t)?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
