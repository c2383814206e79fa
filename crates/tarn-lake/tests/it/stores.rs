//! Two lakes in one process on one bucket name, each with its own S3 server, credentials and
//! prefix: every table a lake writes or reads goes through that lake's own store.

use crate::support::*;
use tarn_lake::{Lake, LoadArgs, LoadMode, Selection};

/// A second S3-protocol server (moto) on a free loopback port, stopped when dropped.
struct SecondS3 {
    child: std::process::Child,
    url: String,
}

impl Drop for SecondS3 {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn second_s3(bucket: &str) -> SecondS3 {
    let port = free_port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (requirements-test.txt)");
    let server = SecondS3 {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // The bucket, made by a real S3 client once the server answers.
    let script = "import boto3, sys, time\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='lake-b', aws_secret_access_key='lake-b-secret', region_name='us-east-1')\nfor _ in range(200):\n    try:\n        s3.create_bucket(Bucket=sys.argv[2]); break\n    except Exception:\n        time.sleep(0.05)\nelse:\n    sys.exit('the second S3 server did not start')";
    let ok = std::process::Command::new("python3")
        .args(["-c", script, &server.url, bucket])
        .status()
        .unwrap();
    assert!(ok.success(), "creating the bucket on the second S3 server");
    server
}

/// Every key on the S3 server at `endpoint` under `prefix`, listed by boto3.
fn keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let script = "import boto3, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):\n    for o in page.get('Contents', []):\n        print(o['Key'])";
    let out = std::process::Command::new("python3")
        .args(["-c", script, endpoint, bucket, prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

async fn open_lake(dir: &std::path::Path, yml: String) -> Lake {
    std::fs::write(dir.join("tarn.yml"), yml).unwrap();
    Lake::open(dir, &Selection::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lakes_on_one_bucket_keep_their_own_stores() {
    let endpoint = std::env::var(tarn_lake::testing::S3_ENV)
        .expect("TARN_TEST_S3: tests need an S3-protocol server; scripts/test starts one");
    let bucket = std::env::var("TARN_TEST_S3_BUCKET").unwrap_or_else(|_| "tarn-test".into());
    let other = second_s3(&bucket);
    let (a_prefix, b_prefix) = (
        format!("a-{}", uuid::Uuid::new_v4().simple()),
        format!("b-{}", uuid::Uuid::new_v4().simple()),
    );
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let yml = |prefix: &str, endpoint: &str, key: &str| {
        format!("lake: t\ndomains: [flights]\nstorage: s3://{bucket}/{prefix}\ns3:\n  endpoint: {endpoint}\n  region: us-east-1\n  access_key_id: {key}\n")
    };
    // Opened one after the other, as a server holding several lakes would: the second must not
    // take the first one's tables over.
    let a = open_lake(
        a_dir.path(),
        yml(
            &a_prefix,
            &endpoint,
            &std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "tarn-test".into()),
        ),
    )
    .await;
    let b = open_lake(b_dir.path(), yml(&b_prefix, &other.url, "lake-b")).await;

    let csv = |dir: &std::path::Path, rows: usize| {
        let path = dir.join("airlines.csv");
        let mut text = "carrier,name\n".to_string();
        for i in 0..rows {
            text.push_str(&format!("C{i},Carrier {i}\n"));
        }
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let load = |source: String| LoadArgs {
        table: "flights.trusted.airlines".into(),
        source,
        format: None,
        mode: LoadMode::Append,
        key: vec![],
        again: false,
    };
    let a_csv = csv(a_dir.path(), 2);
    let b_csv = csv(b_dir.path(), 3);
    assert_eq!(a.load(&load(a_csv)).await.unwrap().rows_written, 2);
    assert_eq!(b.load(&load(b_csv)).await.unwrap().rows_written, 3);

    // Each lake reads its own table back through SQL.
    let count = "SELECT count(*) FROM flights.trusted.airlines";
    assert_eq!(scalar(&a, count).await, "2");
    assert_eq!(scalar(&b, count).await, "3");
    assert_eq!(
        a.history("flights.trusted.airlines").await.unwrap().len(),
        1
    );

    // And each table's files are on its own lake's server, none on the other's.
    let log = |prefix: &str| format!("{prefix}/dev/flights/trusted/airlines/_delta_log/");
    assert!(
        !keys(&endpoint, &bucket, &log(&a_prefix)).is_empty(),
        "lake A's table is not on its own S3 server"
    );
    assert!(
        keys(&other.url, &bucket, &a_prefix).is_empty(),
        "lake A wrote to lake B's S3 server"
    );
    assert!(
        !keys(&other.url, &bucket, &log(&b_prefix)).is_empty(),
        "lake B's table is not on its own S3 server"
    );
    assert!(
        keys(&endpoint, &bucket, &b_prefix).is_empty(),
        "lake B wrote to lake A's S3 server"
    );
}
