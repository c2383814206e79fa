//! Roles held by one node of a deployment at a time (the coordinator that watches zones and
//! fires schedules): leased in the metadata store, renewed by their holder, taken over by
//! another node once a lease runs out (its holder died or stalled).

use crate::{MetadataError, Store};
use serde::Serialize;
use std::time::Duration;

/// The role of the node that watches zones, sweeps them and fires schedules.
pub const COORDINATOR: &str = "coordinator";

/// This host's name.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// What every lease this process holds begins with: `HOST:PID:`.
pub fn this_node() -> String {
    format!("{}:{}:", this_host(), std::process::id())
}

/// Node roles. Reached with [`Store::roles`].
#[derive(Clone, Copy, Debug)]
pub struct Roles<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Roles held by one node at a time.
    pub fn roles(&self) -> Roles<'_> {
        Roles { store: self }
    }
}

/// Who holds a role, since when and until when.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RoleHolder {
    pub role: String,
    pub owner: String,
    pub lease_until: String,
    pub since: String,
}

impl Roles<'_> {
    /// Takes or renews `role` for `owner` for `lease`; answers whether `owner` holds it now
    /// (false while another owner's lease lasts).
    pub async fn hold(
        &self,
        role: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, MetadataError> {
        let now = crate::now();
        let until = (chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // One statement, so two nodes racing for a free role cannot both win it.
        let res = sqlx::query(
            "INSERT INTO node_roles (role, owner, lease_until, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (role) DO UPDATE SET
                 since = CASE WHEN node_roles.owner = excluded.owner THEN node_roles.since ELSE excluded.since END,
                 owner = excluded.owner,
                 lease_until = excluded.lease_until
             WHERE node_roles.owner = excluded.owner OR node_roles.lease_until < $4",
        )
        .bind(role)
        .bind(owner)
        .bind(&until)
        .bind(&now)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives up every role `owner` holds (a node stopping), so another takes them at once.
    pub async fn release(&self, owner: &str) -> Result<u64, MetadataError> {
        Ok(sqlx::query("DELETE FROM node_roles WHERE owner = $1")
            .bind(owner)
            .execute(&self.store.pool)
            .await?
            .rows_affected())
    }

    /// Every role with a live lease, and its holder.
    pub async fn holders(&self) -> Result<Vec<RoleHolder>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT role, owner, lease_until, since FROM node_roles WHERE lease_until >= $1 ORDER BY role",
        )
        .bind(crate::now())
        .fetch_all(&self.store.pool)
        .await?)
    }
}
