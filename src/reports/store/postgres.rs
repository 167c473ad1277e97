//! The shared backend: PostgreSQL, for several MX hosts that report as one
//! receiver. Every host writes to the same tables; the upserts and the
//! reporting lease are single statements, so concurrent hosts need no other
//! coordination. The connection is re-opened when it drops.

use super::{
    list_json, parse_list, parse_row, Built, Pruned, ReportState, Size, Store, StoreError, Stored,
};
use crate::reports::Row;
use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

/// The PostgreSQL store.
pub struct Postgres {
    url: String,
    client: Mutex<Option<Client>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

/// A lock id for the schema migration (any constant shared by all hosts).
const MIGRATION_LOCK: i64 = 0x6175_7468_6d69_6c74;

async fn connect(url: &str) -> Result<Client, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(err)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.keepalives_idle(std::time::Duration::from_secs(60));
    let (client, conn) = config.connect(NoTls).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// The schema steps (`super::migrations`); `authmilter_schema.version` counts the steps applied.
fn migrations() -> Vec<String> {
    super::migrations("BIGSERIAL PRIMARY KEY", "BIGINT", "BYTEA")
}

/// (bucket, row_json, count) rows as [`Stored`].
fn to_stored(rows: &[tokio_postgres::Row]) -> Result<Vec<Stored>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(Stored {
                bucket: r.get(0),
                row: parse_row(r.get(1))?,
                count: r.get::<_, i64>(2) as u64,
            })
        })
        .collect()
}

fn now() -> i64 {
    crate::reports::now_unix()
}

impl Postgres {
    /// Connects and migrates the schema (under an advisory lock, so hosts
    /// starting together do not race).
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or the schema is newer than this
    /// build knows.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = connect(url).await?;
        let tx = client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS authmilter_schema (version INTEGER NOT NULL);",
        )
        .await
        .map_err(err)?;
        let version: i32 = match tx
            .query_opt("SELECT version FROM authmilter_schema", &[])
            .await
            .map_err(err)?
        {
            Some(r) => r.get(0),
            None => {
                tx.execute("INSERT INTO authmilter_schema VALUES (0)", &[])
                    .await
                    .map_err(err)?;
                0
            }
        };
        if version as usize > migrations().len() {
            return Err(StoreError(format!(
                "schema version {version} is newer than this authmilter knows ({})",
                migrations().len()
            )));
        }
        for (i, step) in migrations().iter().enumerate().skip(version as usize) {
            tx.batch_execute(step).await.map_err(err)?;
            tx.execute(
                "UPDATE authmilter_schema SET version = $1",
                &[&((i + 1) as i32)],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(Self {
            url: url.to_string(),
            client: Mutex::new(Some(client)),
        })
    }

    /// The client, reconnecting when the last one was closed.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.url).await?);
        }
        Ok(guard)
    }
}

macro_rules! client {
    ($self:ident, $g:ident) => {
        let mut $g = $self.client().await?;
        #[allow(unused_mut)]
        let mut $g = $g.as_mut().expect("connected above");
    };
}

#[async_trait]
impl Store for Postgres {
    async fn add(&self, rows: &[(i64, Row, u64)]) -> Result<(), StoreError> {
        client!(self, c);
        let tx = c.transaction().await.map_err(err)?;
        let st = tx
            .prepare(
                "INSERT INTO dmarc_rows (bucket, policy_domain, row_key, row_json, count)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (bucket, row_key) WHERE report_id IS NULL
                 DO UPDATE SET count = dmarc_rows.count + excluded.count",
            )
            .await
            .map_err(err)?;
        // In key order: hosts writing the same rows lock them in the same
        // order, so they cannot deadlock each other.
        let mut keyed: Vec<(i64, String, String, &Row, i64)> = rows
            .iter()
            .map(|(b, r, n)| {
                let (key, json) = r.key_and_json();
                (*b, key, json, r, *n as i64)
            })
            .collect();
        keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (b, key, json, r, n) in &keyed {
            tx.execute(&st, &[b, &r.published.domain, key, json, n])
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn unreported_domains(&self, since: i64, until: i64) -> Result<Vec<String>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT DISTINCT policy_domain FROM dmarc_rows
                 WHERE report_id IS NULL AND bucket >= $1 AND bucket < $2 ORDER BY 1",
                &[&since, &until],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn open_domains(&self) -> Result<Vec<String>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT DISTINCT policy_domain FROM reports WHERE state <> 'done' ORDER BY 1",
                &[],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn unreported_buckets(&self, domain: &str, until: i64) -> Result<Vec<i64>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT DISTINCT bucket FROM dmarc_rows
                 WHERE report_id IS NULL AND policy_domain = $1 AND bucket < $2 ORDER BY 1",
                &[&domain, &until],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn lease(&self, domain: &str, holder: &str, secs: i64) -> Result<bool, StoreError> {
        client!(self, c);
        // The database's clock, not each host's: skew cannot stretch a lease.
        let n = c
            .execute(
                "INSERT INTO report_leases (policy_domain, holder, expires)
                 VALUES ($1, $2, EXTRACT(EPOCH FROM now())::bigint + $3)
                 ON CONFLICT (policy_domain) DO UPDATE
                 SET holder = excluded.holder, expires = excluded.expires
                 WHERE report_leases.expires < EXTRACT(EPOCH FROM now())::bigint
                    OR report_leases.holder = excluded.holder",
                &[&domain, &holder, &secs],
            )
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn release(&self, domain: &str, holder: &str) -> Result<(), StoreError> {
        client!(self, c);
        c.execute(
            "DELETE FROM report_leases WHERE policy_domain = $1 AND holder = $2",
            &[&domain, &holder],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn claim(
        &self,
        domain: &str,
        since: i64,
        until: i64,
        id: &str,
        range: (i64, i64),
    ) -> Result<u64, StoreError> {
        client!(self, c);
        let tx = c.transaction().await.map_err(err)?;
        let n = tx
            .execute(
                "UPDATE dmarc_rows SET report_id = $1
                 WHERE report_id IS NULL AND policy_domain = $2 AND bucket >= $3 AND bucket < $4",
                &[&id, &domain, &since, &until],
            )
            .await
            .map_err(err)?;
        if n == 0 {
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO reports (id, policy_domain, begin_ts, end_ts, state, created)
             VALUES ($1, $2, $3, $4, 'claimed', $5)",
            &[&id, &domain, &range.0, &range.1, &now()],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn unreported_rows(
        &self,
        domain: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT bucket, row_json, count FROM dmarc_rows WHERE report_id IS NULL
                 AND policy_domain = $1 AND bucket >= $2 AND bucket < $3 ORDER BY id",
                &[&domain, &since, &until],
            )
            .await
            .map_err(err)?;
        to_stored(&rows)
    }

    async fn claimed(&self, id: &str) -> Result<Vec<Stored>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT bucket, row_json, count FROM dmarc_rows WHERE report_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .map_err(err)?;
        to_stored(&rows)
    }

    async fn open_reports(&self, domain: &str) -> Result<Vec<ReportState>, StoreError> {
        client!(self, c);
        let rows = c
            .query(
                "SELECT id, policy_domain, begin_ts, end_ts, state, filename, body, owed
                 FROM reports WHERE policy_domain = $1 AND state <> 'done' ORDER BY begin_ts, id",
                &[&domain],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| {
                let state: String = r.get(4);
                ReportState {
                    id: r.get(0),
                    domain: r.get(1),
                    begin: r.get(2),
                    end: r.get(3),
                    built: (state == "pending").then(|| Built {
                        filename: r.get(5),
                        body: r.get(6),
                        owed: parse_list(r.get(7)),
                    }),
                }
            })
            .collect())
    }

    async fn save_built(&self, id: &str, built: &Built) -> Result<(), StoreError> {
        client!(self, c);
        c.execute(
            "UPDATE reports SET state = 'pending', filename = $2, body = $3, owed = $4 WHERE id = $1",
            &[&id, &built.filename, &built.body, &list_json(&built.owed)],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn set_owed(&self, id: &str, owed: &[String]) -> Result<(), StoreError> {
        client!(self, c);
        if owed.is_empty() {
            c.execute(
                "UPDATE reports SET state = 'done', owed = '[]', body = NULL WHERE id = $1",
                &[&id],
            )
            .await
        } else {
            c.execute(
                "UPDATE reports SET owed = $2 WHERE id = $1",
                &[&id, &list_json(owed)],
            )
            .await
        }
        .map_err(err)?;
        Ok(())
    }

    async fn prune(&self, before: i64) -> Result<Pruned, StoreError> {
        client!(self, c);
        let tx = c.transaction().await.map_err(err)?;
        let unreported: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM dmarc_rows WHERE bucket < $1 AND report_id IS NULL",
                &[&before],
            )
            .await
            .map_err(err)?
            .get(0);
        let rows = tx
            .execute(
                "DELETE FROM dmarc_rows WHERE bucket < $1 AND (report_id IS NULL OR report_id IN
                 (SELECT id FROM reports WHERE state = 'done'))",
                &[&before],
            )
            .await
            .map_err(err)?;
        let reports = tx
            .execute(
                "DELETE FROM reports WHERE state = 'done' AND created < $1",
                &[&before],
            )
            .await
            .map_err(err)?;
        tx.execute("DELETE FROM failure_rate WHERE bucket < $1", &[&before])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Pruned {
            rows,
            unreported_rows: unreported as u64,
            reports,
        })
    }

    async fn failure_slot(
        &self,
        destination: &str,
        hour: i64,
        max: u32,
    ) -> Result<bool, StoreError> {
        client!(self, c);
        let row = c
            .query_opt(
                "INSERT INTO failure_rate (destination, bucket, count) VALUES ($1, $2, 1)
                 ON CONFLICT (destination, bucket) DO UPDATE SET count = failure_rate.count + 1
                 WHERE failure_rate.count < $3
                 RETURNING count",
                &[&destination, &hour, &(max as i64)],
            )
            .await
            .map_err(err)?;
        Ok(row.is_some_and(|r| r.get::<_, i64>(0) <= max as i64))
    }

    async fn size(&self) -> Result<Size, StoreError> {
        client!(self, c);
        let r = c
            .query_one(
                "SELECT COUNT(*), pg_total_relation_size('dmarc_rows') FROM dmarc_rows",
                &[],
            )
            .await
            .map_err(err)?;
        Ok(Size {
            rows: r.get::<_, i64>(0) as u64,
            bytes: r.get::<_, i64>(1) as u64,
        })
    }
}
