//! KPI dashboards: `dashboards/NAME.yml` beside `tarn.yml`, each a page of the web UI whose
//! tiles are SQL over the catalog drawn as a number, a line, bars or a table. Checked like
//! pipelines: every problem at once, each with its file and line.

use crate::error::ConfigError;
use crate::pipeline::{load_each, Parser};
use crate::resolve::LakeConfig;
use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of dashboard files, beside `tarn.yml`.
pub const DASHBOARDS_DIR: &str = "dashboards";

/// How a tile draws its query's answer.
pub const CHARTS: [&str; 4] = ["number", "line", "bar", "table"];

/// One dashboard, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSpec {
    /// The file's name without `.yml`.
    pub name: String,
    pub path: PathBuf,
    pub title: String,
    /// How often the page reads its tiles again (none: only when opened).
    pub refresh: Option<Duration>,
    pub tiles: Vec<Tile>,
}

/// One tile of a dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub title: String,
    pub sql: String,
    /// One of [`CHARTS`].
    pub chart: String,
    /// The column along x (default: the first), for line and bar.
    pub x: Option<String>,
    /// The column along y (default: the second), for line and bar.
    pub y: Option<String>,
    /// Where the tile starts in its file.
    pub line: usize,
}

const TOP_KEYS: [&str; 3] = ["title", "refresh", "tiles"];
const TILE_KEYS: [&str; 5] = ["title", "sql", "chart", "x", "y"];

/// Every dashboard of the lake, or every problem found in their files.
pub fn load_dashboards(lake: &LakeConfig) -> Result<Vec<DashboardSpec>, ConfigError> {
    let root = lake.root.join(DASHBOARDS_DIR);
    let files = crate::pipeline::yaml_files(&root);
    load_each(files, |path, _: &[DashboardSpec]| load_dashboard(path))
}

/// One dashboard file, checked.
pub fn load_dashboard(path: &Path) -> Result<DashboardSpec, ConfigError> {
    Parser::check(path, |p, value| p.dashboard(path, value))
}

/// A tile to add to a dashboard (what the SQL page's "save as a tile" sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTile {
    pub title: String,
    pub sql: String,
    pub chart: String,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// A YAML scalar holding `text` exactly: a JSON string (which YAML reads as a double-quoted
/// scalar), so no value can add a key or end the list.
fn scalar(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Adds `tile` at the end of dashboard `name` (`dashboards/NAME.yml`, made when it does not
/// exist), keeping the rest of the file as it was written, comments included. Refused, with
/// nothing written, when the name is not a file name, when the file does not end with its
/// `tiles:` list, or when the dashboard would not check.
pub fn append_tile(
    lake: &LakeConfig,
    name: &str,
    tile: &NewTile,
) -> Result<DashboardSpec, ConfigError> {
    let dir = lake.root.join(DASHBOARDS_DIR);
    let path = dir.join(format!("{name}.yml"));
    if let Err(why) = crate::check_identifier(name) {
        return Err(ConfigError::invalid(
            &path,
            None,
            format!("dashboard name `{name}` {why}"),
            Some("name it with lowercase letters, digits and underscores, e.g. kpis (the file is dashboards/NAME.yml)".to_string()),
        ));
    }
    let mut item = format!(
        "  - title: {}\n    chart: {}\n    sql: {}\n",
        scalar(&tile.title),
        scalar(&tile.chart),
        scalar(tile.sql.trim())
    );
    for (key, value) in [("x", &tile.x), ("y", &tile.y)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            item.push_str(&format!("    {key}: {}\n", scalar(v)));
        }
    }
    let (before, text) = match std::fs::read_to_string(&path) {
        Ok(old) => {
            let spec = load_dashboard(&path)?;
            let last_key = old
                .lines()
                .rfind(|l| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']))
                .unwrap_or("");
            if !last_key.starts_with("tiles:") || last_key.trim_end() != "tiles:" {
                return Err(ConfigError::invalid(
                    &path,
                    None,
                    "a tile can only be added when `tiles:` is the file's last key, written as a block list",
                    Some("move `tiles:` to the end of the file, one `- title: ...` per tile".to_string()),
                ));
            }
            let sep = if old.ends_with('\n') { "" } else { "\n" };
            (spec.tiles.len(), format!("{old}{sep}{item}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (0, format!("title: {}\ntiles:\n{item}", scalar(name)))
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    // Checked as it will be, then written beside the file and moved over it: a tile that
    // would not check, or a crash midway, leaves the dashboard as it was.
    let spec = Parser::check_new(&path, text.clone(), |p, value| p.dashboard(&path, value))?;
    if spec.tiles.len() != before + 1 {
        return Err(ConfigError::invalid(
            &path,
            None,
            "the tile did not add to the list of tiles",
            None,
        ));
    }
    let io = |source| ConfigError::Read {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let draft = dir.join(format!(".{name}.yml.saving"));
    std::fs::write(&draft, &text).map_err(io)?;
    std::fs::rename(&draft, &path).map_err(io)?;
    Ok(spec)
}

/// The line of the `i`-th item of the top-level list `key` (1 when it cannot be found).
fn item_line(lines: &[&str], key: &str, i: usize) -> usize {
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_end() == format!("{key}:") || l.starts_with(&format!("{key}:")))
    else {
        return 1;
    };
    lines[start + 1..]
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("- "))
        .map(|(n, _)| start + 2 + n)
        .nth(i)
        .unwrap_or(start + 1)
}

impl Parser<'_> {
    fn dashboard(&mut self, path: &Path, v: &Value) -> DashboardSpec {
        let empty = Mapping::new();
        let (name, top) = self.named_file(
            path,
            v,
            &empty,
            "dashboard",
            "dashboards/kpis.yml",
            "start with `title:` and `tiles:`",
        );
        self.unknown_keys(top, &[], &TOP_KEYS);
        let title = self.string(top, &["title"]).unwrap_or_else(|| name.clone());
        let refresh = self.string(top, &["refresh"]).and_then(|r| {
            let d = crate::train::parse_duration(&r).filter(|d| d.as_secs() >= 5);
            if d.is_none() {
                self.problem(
                    &["refresh"],
                    format!("`refresh: {r}` is not a duration of 5 s or more"),
                    "write e.g. `refresh: 60s` or `refresh: 5m`",
                );
            }
            d
        });
        let mut tiles = Vec::new();
        match top.get("tiles") {
            Some(Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let line = item_line(&self.lines, "tiles", i);
                    let problem = |p: &mut Parser<'_>, message: String, fix: &str| {
                        p.problems.push(ConfigError::invalid(
                            p.path,
                            Some(line),
                            message,
                            Some(fix.to_string()),
                        ))
                    };
                    let Some(m) = item.as_mapping() else {
                        problem(
                            self,
                            format!("tile {} is not a mapping", i + 1),
                            "write `- title: ...` with `sql:` and `chart:` under it",
                        );
                        continue;
                    };
                    for k in m.keys() {
                        let key = k.as_str().unwrap_or("?");
                        if !TILE_KEYS.contains(&key) {
                            problem(
                                self,
                                format!("tile {}: unknown key `{key}`", i + 1),
                                "a tile takes title, sql, chart, x and y",
                            );
                        }
                    }
                    let text = |key: &str| {
                        m.get(key).and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                    };
                    let sql = text("sql").filter(|s| !s.trim().is_empty());
                    if sql.is_none() {
                        problem(self, format!("tile {} has no `sql:`", i + 1), "give it a query over the catalog, e.g. `sql: SELECT count(*) FROM flights.trusted.flights`");
                    }
                    let chart = text("chart").unwrap_or_else(|| "table".into());
                    if !CHARTS.contains(&chart.as_str()) {
                        problem(
                            self,
                            format!("tile {}: `chart: {chart}` is not a chart tarn draws", i + 1),
                            "use number, line, bar or table",
                        );
                    }
                    tiles.push(Tile {
                        title: text("title").unwrap_or_else(|| format!("tile {}", i + 1)),
                        sql: sql
                            .unwrap_or_default()
                            .trim()
                            .trim_end_matches(';')
                            .to_string(),
                        chart,
                        x: text("x"),
                        y: text("y"),
                        line,
                    });
                }
            }
            Some(_) => self.problem(
                &["tiles"],
                "`tiles` must be a list",
                "write each tile as `- title: ...`",
            ),
            None => self.problem(
                &[],
                "the dashboard has no `tiles:`",
                "add `tiles:` with at least one `- title: ... sql: ... chart: ...`",
            ),
        }
        DashboardSpec {
            name,
            path: path.to_path_buf(),
            title,
            refresh,
            tiles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_tile_is_added_at_the_end_and_keeps_the_file_as_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tarn.yml"), "lake: t\n").unwrap();
        let lake = LakeConfig::load(&dir.path().join("tarn.yml"), &Default::default()).unwrap();
        let tile = NewTile {
            title: "Late: \"bad\"\n- title: x".into(),
            sql: "SELECT origin, count(*) AS n\nFROM t\nGROUP BY origin".into(),
            chart: "bar".into(),
            x: Some("origin".into()),
            y: None,
        };
        let made = append_tile(&lake, "ops", &tile).unwrap();
        assert_eq!(made.tiles.len(), 1);
        assert_eq!(made.tiles[0].title, tile.title);
        assert_eq!(made.tiles[0].sql, tile.sql);
        assert_eq!(made.tiles[0].x.as_deref(), Some("origin"));
        let path = dir.path().join("dashboards/ops.yml");
        let with_comment = format!("# kept\n{}", std::fs::read_to_string(&path).unwrap());
        std::fs::write(&path, &with_comment).unwrap();
        let again = append_tile(
            &lake,
            "ops",
            &NewTile {
                chart: "number".into(),
                x: None,
                ..tile.clone()
            },
        )
        .unwrap();
        assert_eq!(again.tiles.len(), 2);
        assert_eq!(again.tiles[1].chart, "number");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with(&with_comment));
        // A chart tarn does not draw is refused and the file stays as it was.
        let err = append_tile(
            &lake,
            "ops",
            &NewTile {
                chart: "pie".into(),
                ..tile.clone()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("`chart: pie`"), "{err}");
        assert!(err.to_string().contains("ops.yml"), "{err}");
        assert_eq!(load_dashboard(&path).unwrap().tiles.len(), 2);
        // `tiles:` not last: refused, with the fix.
        std::fs::write(
            &path,
            "tiles:\n  - sql: SELECT 1\n    chart: number\ntitle: T\n",
        )
        .unwrap();
        let err = append_tile(&lake, "ops", &tile).unwrap_err().to_string();
        assert!(err.contains("last key"), "{err}");
        assert!(append_tile(&lake, "../x", &tile)
            .unwrap_err()
            .to_string()
            .contains("dashboard name `../x`"));
    }

    #[test]
    fn every_problem_of_a_dashboard_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpis.yml");
        std::fs::write(
            &path,
            "title: KPIs\nrefresh: 1s\ntiles:\n  - title: Flights\n    sql: SELECT count(*) FROM t\n    chart: number\n  - title: Broken\n    chart: pie\n    colour: red\n",
        )
        .unwrap();
        let err = load_dashboard(&path).unwrap_err().to_string();
        for want in [
            "kpis.yml:2",
            "refresh: 1s",
            "kpis.yml:7",
            "tile 2 has no `sql:`",
            "`chart: pie`",
            "unknown key `colour`",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
        std::fs::write(
            &path,
            "title: KPIs\nrefresh: 60s\ntiles:\n  - title: Flights\n    sql: SELECT count(*) FROM t;\n    chart: number\n  - sql: SELECT a, b FROM t\n    chart: bar\n    x: a\n",
        )
        .unwrap();
        let d = load_dashboard(&path).unwrap();
        assert_eq!(d.refresh, Some(Duration::from_secs(60)));
        assert_eq!(d.tiles.len(), 2);
        assert_eq!(d.tiles[0].sql, "SELECT count(*) FROM t");
        assert_eq!(
            (
                d.tiles[1].title.as_str(),
                d.tiles[1].line,
                d.tiles[1].x.as_deref()
            ),
            ("tile 2", 7, Some("a"))
        );
    }
}
