//! The embedded backend: one SQLite file (WAL mode), created and migrated on
//! open. Calls run on the blocking pool, one at a time.

use super::{
    list_json, parse_list, parse_row, Built, Pruned, ReportState, Size, Store, StoreError, Stored,
};
use crate::reports::Row;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::{Arc, Mutex};

/// The SQLite store.
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("sqlite: {e}"))
}

impl Sqlite {
    /// Opens (creating the file and its directory) and migrates the database.
    ///
    /// # Errors
    ///
    /// When the file cannot be created or opened, or the schema is newer
    /// than this build knows.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_string();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let p = std::path::Path::new(&path);
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
            }
            let mut conn = Connection::open(p).map_err(|e| StoreError(format!("{path}: {e}")))?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(err)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(err)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(err)?;
            migrate(&mut conn).map_err(|e| StoreError(format!("{path}: {}", e.0)))?;
            Ok(conn)
        })
        .await
        .map_err(err)??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(err)
        })
        .await
        .map_err(err)?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(err)? as usize;
    if version > migrations().len() {
        return Err(StoreError(format!(
            "schema version {version} is newer than this authmilter knows ({})",
            migrations().len()
        )));
    }
    for (i, step) in migrations().iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(step).map_err(err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

fn to_stored(raw: Vec<(i64, String, i64)>) -> Result<Vec<Stored>, StoreError> {
    raw.into_iter()
        .map(|(bucket, json, count)| {
            Ok(Stored {
                bucket,
                row: parse_row(&json)?,
                count: count as u64,
            })
        })
        .collect()
}

/// The schema steps (`super::migrations`); `PRAGMA user_version` is the number of steps applied.
fn migrations() -> Vec<String> {
    super::migrations("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "BLOB")
}

fn now() -> i64 {
    crate::reports::now_unix()
}

#[async_trait]
impl Store for Sqlite {
    async fn add(&self, rows: &[(i64, Row, u64)]) -> Result<(), StoreError> {
        let rows: Vec<(i64, String, String, String, i64)> = rows
            .iter()
            .map(|(b, r, n)| {
                let (key, json) = r.key_and_json();
                (*b, r.published.domain.clone(), key, json, *n as i64)
            })
            .collect();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO dmarc_rows (bucket, policy_domain, row_key, row_json, count)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (bucket, row_key) WHERE report_id IS NULL
                     DO UPDATE SET count = dmarc_rows.count + excluded.count",
                )?;
                for (b, d, k, j, n) in &rows {
                    st.execute(params![b, d, k, j, n])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn unreported_domains(&self, since: i64, until: i64) -> Result<Vec<String>, StoreError> {
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT DISTINCT policy_domain FROM dmarc_rows
                 WHERE report_id IS NULL AND bucket >= ?1 AND bucket < ?2 ORDER BY 1",
            )?;
            let v = st
                .query_map(params![since, until], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
        .await
    }

    async fn open_domains(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT DISTINCT policy_domain FROM reports WHERE state <> 'done' ORDER BY 1",
            )?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
        .await
    }

    async fn unreported_buckets(&self, domain: &str, until: i64) -> Result<Vec<i64>, StoreError> {
        let domain = domain.to_string();
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT DISTINCT bucket FROM dmarc_rows
                 WHERE report_id IS NULL AND policy_domain = ?1 AND bucket < ?2 ORDER BY 1",
            )?;
            let v = st
                .query_map(params![domain, until], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok(v)
        })
        .await
    }

    async fn lease(&self, domain: &str, holder: &str, secs: i64) -> Result<bool, StoreError> {
        let (domain, holder) = (domain.to_string(), holder.to_string());
        self.with(move |c| {
            let n = c.execute(
                "INSERT INTO report_leases (policy_domain, holder, expires) VALUES (?1, ?2, ?3)
                 ON CONFLICT (policy_domain) DO UPDATE
                 SET holder = excluded.holder, expires = excluded.expires
                 WHERE report_leases.expires < ?4 OR report_leases.holder = excluded.holder",
                params![domain, holder, now() + secs, now()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn release(&self, domain: &str, holder: &str) -> Result<(), StoreError> {
        let (domain, holder) = (domain.to_string(), holder.to_string());
        self.with(move |c| {
            c.execute(
                "DELETE FROM report_leases WHERE policy_domain = ?1 AND holder = ?2",
                params![domain, holder],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim(
        &self,
        domain: &str,
        since: i64,
        until: i64,
        id: &str,
        range: (i64, i64),
    ) -> Result<u64, StoreError> {
        let (domain, id) = (domain.to_string(), id.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE dmarc_rows SET report_id = ?1
                 WHERE report_id IS NULL AND policy_domain = ?2 AND bucket >= ?3 AND bucket < ?4",
                params![id, domain, since, until],
            )?;
            if n == 0 {
                return Ok(0);
            }
            tx.execute(
                "INSERT INTO reports (id, policy_domain, begin_ts, end_ts, state, created)
                 VALUES (?1, ?2, ?3, ?4, 'claimed', ?5)",
                params![id, domain, range.0, range.1, now()],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn unreported_rows(
        &self,
        domain: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        let domain = domain.to_string();
        let raw = self
            .with(move |c| {
                let mut st = c.prepare(
                    "SELECT bucket, row_json, count FROM dmarc_rows WHERE report_id IS NULL
                     AND policy_domain = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY id",
                )?;
                let v = st
                    .query_map(params![domain, since, until], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await?;
        to_stored(raw)
    }

    async fn claimed(&self, id: &str) -> Result<Vec<Stored>, StoreError> {
        let id = id.to_string();
        let raw = self
            .with(move |c| {
                let mut st = c.prepare(
                    "SELECT bucket, row_json, count FROM dmarc_rows WHERE report_id = ?1 ORDER BY id",
                )?;
                let v = st
                    .query_map(params![id], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await?;
        to_stored(raw)
    }

    async fn open_reports(&self, domain: &str) -> Result<Vec<ReportState>, StoreError> {
        let domain = domain.to_string();
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT id, policy_domain, begin_ts, end_ts, state, filename, body, owed
                 FROM reports WHERE policy_domain = ?1 AND state <> 'done' ORDER BY begin_ts, id",
            )?;
            let v = st
                .query_map(params![domain], |r| {
                    let state: String = r.get(4)?;
                    let built = if state == "pending" {
                        Some(Built {
                            filename: r.get(5)?,
                            body: r.get(6)?,
                            owed: parse_list(&r.get::<_, String>(7)?),
                        })
                    } else {
                        None
                    };
                    Ok(ReportState {
                        id: r.get(0)?,
                        domain: r.get(1)?,
                        begin: r.get(2)?,
                        end: r.get(3)?,
                        built,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
        .await
    }

    async fn save_built(&self, id: &str, built: &Built) -> Result<(), StoreError> {
        let (id, b) = (id.to_string(), built.clone());
        self.with(move |c| {
            c.execute(
                "UPDATE reports SET state = 'pending', filename = ?2, body = ?3, owed = ?4 WHERE id = ?1",
                params![id, b.filename, b.body, list_json(&b.owed)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn set_owed(&self, id: &str, owed: &[String]) -> Result<(), StoreError> {
        let (id, owed) = (id.to_string(), owed.to_vec());
        self.with(move |c| {
            if owed.is_empty() {
                c.execute(
                    "UPDATE reports SET state = 'done', owed = '[]', body = NULL WHERE id = ?1",
                    params![id],
                )?;
            } else {
                c.execute(
                    "UPDATE reports SET owed = ?2 WHERE id = ?1",
                    params![id, list_json(&owed)],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn prune(&self, before: i64) -> Result<Pruned, StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let unreported: i64 = tx.query_row(
                "SELECT COUNT(*) FROM dmarc_rows WHERE bucket < ?1 AND report_id IS NULL",
                params![before],
                |r| r.get(0),
            )?;
            // Rows of a report still owed stay until it is done.
            let rows = tx.execute(
                "DELETE FROM dmarc_rows WHERE bucket < ?1 AND (report_id IS NULL OR report_id IN
                 (SELECT id FROM reports WHERE state = 'done'))",
                params![before],
            )?;
            let reports = tx.execute(
                "DELETE FROM reports WHERE state = 'done' AND created < ?1",
                params![before],
            )?;
            tx.execute(
                "DELETE FROM failure_rate WHERE bucket < ?1",
                params![before],
            )?;
            tx.commit()?;
            Ok(Pruned {
                rows: rows as u64,
                unreported_rows: unreported as u64,
                reports: reports as u64,
            })
        })
        .await
    }

    async fn failure_slot(
        &self,
        destination: &str,
        hour: i64,
        max: u32,
    ) -> Result<bool, StoreError> {
        let destination = destination.to_string();
        self.with(move |c| {
            let n: Option<i64> = c
                .query_row(
                    "INSERT INTO failure_rate (destination, bucket, count) VALUES (?1, ?2, 1)
                     ON CONFLICT (destination, bucket) DO UPDATE SET count = failure_rate.count + 1
                     WHERE failure_rate.count < ?3
                     RETURNING count",
                    params![destination, hour, max as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(n.is_some_and(|n| n <= max as i64))
        })
        .await
    }

    async fn size(&self) -> Result<Size, StoreError> {
        self.with(|c| {
            let rows: i64 = c.query_row("SELECT COUNT(*) FROM dmarc_rows", [], |r| r.get(0))?;
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok(Size {
                rows: rows as u64,
                bytes: ((pages - free) * size) as u64,
            })
        })
        .await
    }
}
