//! `tarn_zones`, the module of tarn's Python runtime that lets a step read its zones' objects
//! on either deployment: its S3 requests are signed exactly as botocore signs them (so AWS,
//! MinIO or Ceph accept them), and file zones read the file.

use std::path::Path;

#[test]
fn tarn_zones_signs_s3_requests_as_botocore_does_and_reads_file_zones() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/py");
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zones_check.py"))
        .arg(&py)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
