//! Opening the store: URL handling, SQLite WAL and busy timeout, embedded migrations.

use crate::MetadataError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;

/// A handle on the metadata store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// Where write transactions run: on SQLite one connection, so a process's writers queue
    /// in turn instead of contending for the file's lock; on Postgres the pool itself.
    writer: AnyPool,
    pub(crate) sqlite: bool,
    /// Opened read-only (a store this process cannot write).
    pub(crate) read_only: bool,
    /// Log-batches waiting for the writer, committed together (SQLite).
    pub(crate) group: std::sync::Arc<crate::group::Group>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating when needed) the store at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, MetadataError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let mut read_only = false;
        let url = if is_sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent() {
                std::fs::create_dir_all(dir).map_err(|source| MetadataError::Folder {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            if path.contains('?') {
                format!("sqlite://{path}")
            } else if read_only_file(std::path::Path::new(file)) {
                // A store this process may read but not write (a read-only copy, another
                // user's lake): opened read-only so reading commands work; writes fail.
                read_only = true;
                format!("sqlite://{path}?mode=ro&immutable=1")
            } else {
                format!("sqlite://{path}?mode=rwc")
            }
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&url).map_err(|source| MetadataError::Open {
            url: redact(&url),
            source,
        })?;
        let options = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if is_sqlite && read_only {
                            conn.execute("PRAGMA case_sensitive_like=ON").await?;
                        } else if is_sqlite {
                            // WAL lets readers run beside the one writer; the busy timeout makes a
                            // second process wait for the lock instead of failing.
                            conn.execute("PRAGMA journal_mode=WAL").await?;
                            conn.execute("PRAGMA busy_timeout=30000").await?;
                            conn.execute("PRAGMA synchronous=NORMAL").await?;
                            // Statement journals and sorts in memory: a multi-row upsert's
                            // journal past 64 KiB would otherwise go to a temporary file made,
                            // written and deleted for each statement.
                            conn.execute("PRAGMA temp_store=MEMORY").await?;
                            // Reads through a memory map and a larger page cache: a search
                            // that visits thousands of rows by key does not pay a system call
                            // per page (the mapping shares the OS's cache between connections).
                            conn.execute("PRAGMA mmap_size=1073741824").await?;
                            conn.execute("PRAGMA cache_size=-16384").await?;
                            // LIKE is case-sensitive, as on Postgres and in MLflow's filters
                            // (ILIKE is the case-blind one).
                            conn.execute("PRAGMA case_sensitive_like=ON").await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(if is_sqlite { 4 } else { 10 })
            .connect_with(opts.clone())
            .await
            .map_err(|source| MetadataError::Open {
                url: redact(&url),
                source,
            })?;
        // Two processes opening a new store at once both try the first migration; the loser
        // finds the tables made and, once the winner has recorded them, nothing left to do.
        // A read-only store is used as it is.
        let mut tries = 0;
        let mut migrated = read_only;
        while !migrated {
            match MIGRATOR.run(&pool).await {
                Ok(()) => migrated = true,
                Err(_) if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let writer = if is_sqlite {
            options(1)
                .connect_with(opts)
                .await
                .map_err(|source| MetadataError::Open {
                    url: redact(&url),
                    source,
                })?
        } else {
            pool.clone()
        };
        let store = Store {
            pool,
            writer,
            sqlite: is_sqlite,
            read_only,
            group: Default::default(),
        };
        if !read_only {
            store.backfill_dataset_inputs().await?;
        }
        Ok(store)
    }

    /// A transaction that will write. On SQLite every one goes through the process's single
    /// writing connection (writers queue there) and takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so one from another process waits its turn under the busy timeout instead
    /// of failing with "database is locked" when it upgrades from reading.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, MetadataError> {
        Ok(if self.sqlite {
            self.writer.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.writer.begin().await?
        })
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), MetadataError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Whether `file` exists and this process cannot write it or the files SQLite keeps beside it.
fn read_only_file(file: &std::path::Path) -> bool {
    if !file.is_file() {
        return false;
    }
    if std::fs::OpenOptions::new().append(true).open(file).is_err() {
        return true;
    }
    let probe = file.with_extension(format!("probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            std::fs::remove_file(&probe).ok();
            false
        }
        Err(_) => true,
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}
