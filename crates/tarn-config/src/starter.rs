//! The commented starter `tarn.yml` that `tarn init` writes.

/// A starter configuration; every key is explained where it stands.
pub const STARTER: &str = r#"# tarn.yml: describes one lake. `tarn --help` lists what you can do with it.
lake: my-lake

# Stage used when no --env is given.
environment: dev

# Where zones live. A folder (relative to this file) or file:///abs/path; s3://bucket/prefix
# for a shared deployment. Each environment gets its own sub-folder.
# storage: lake

# Where the catalog, events and history live. Default: a SQLite file under .tarn/.
# metadata: sqlite://.tarn/dev.db

# Business areas. Each gets one zone per layer: DOMAIN/LAYER in `tarn land` and `tarn ls`,
# and a Glue-style database DOMAIN_LAYER in the catalog.
domains:
  - name: flights
    description: Flights out of New York City
    tags: { owner: data-eng }

# Layers of every domain: raw (as landed, append-only), trusted (typed, Delta, contracts),
# service (curated for consumers). This is the default; remove or reorder as you need.
layers: [raw, trusted, service]

# Tags attached to everything the lake creates.
tags:
  team: data

# Where notifications go (delivered by pipelines; validated now).
topics:
  - name: failures
    subscriptions:
      - protocol: file
        endpoint: .tarn/failures.log

# Singer taps from PyPI, each in its own virtualenv (`tarn taps run NAME`; `tarn serve` runs
# those with a schedule). Streams land in DOMAIN.LAYER.<name>_<stream>, exactly once.
# taps:
#   - id: postgres                  # tap-postgres in the Singer index (or give `source:`)
#     name: warehouse
#     domain: flights
#     settings: {host: db.internal, port: 5432, user: loader, database: ops}
#     secrets: {password: tarn:pg_password}   # `tarn secrets set pg_password`; or env:VAR, file:PATH
#     select: [public-flights]
#     schedule: "0 */6 * * *"

# Per-stage overrides of any key above. `tarn --env prd ...` selects one.
environments:
  prd:
    storage: lake-prd
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn starter_parses() {
        let cfg = crate::LakeConfig::parse(
            std::path::Path::new("/tmp/s/tarn.yml"),
            super::STARTER,
            &crate::Selection::default(),
        )
        .unwrap();
        assert_eq!(cfg.domains[0].name, "flights");
        assert_eq!(cfg.topics.len(), 1);
    }
}
