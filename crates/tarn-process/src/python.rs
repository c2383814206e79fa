//! Python for `lambda`, `glue` and trigger/catch modules: one virtualenv per distinct
//! `requirements.json` (built once, cached by its hash under `.tarn/venvs/`, or under
//! `TARN_VENV_CACHE` to share them between lakes), the module's
//! shared modules on the path, and tarn's small runtime files (the lambda runner, tarn's
//! `awsglue`: `getResolvedOptions` for Python shell jobs, and GlueContext, DynamicFrame,
//! transforms and Job over PySpark for Glue ETL jobs, see [`AWSGLUE`]).

use crate::ProcessError;
use sha2::Digest;
use std::path::{Path, PathBuf};
use tarn_config::Module;

const LAMBDA_RUNNER: &str = include_str!("py/lambda_runner.py");
/// tarn's `awsglue` package: each file's path in the package's folder and its text.
pub const AWSGLUE: &[(&str, &str)] = &[
    (
        "awsglue/__init__.py",
        include_str!("py/awsglue/__init__.py"),
    ),
    ("awsglue/_tarn.py", include_str!("py/awsglue/_tarn.py")),
    ("awsglue/context.py", include_str!("py/awsglue/context.py")),
    (
        "awsglue/dynamicframe.py",
        include_str!("py/awsglue/dynamicframe.py"),
    ),
    ("awsglue/job.py", include_str!("py/awsglue/job.py")),
    (
        "awsglue/transforms.py",
        include_str!("py/awsglue/transforms.py"),
    ),
    ("awsglue/utils.py", include_str!("py/awsglue/utils.py")),
];
const TARN_ZONES: &str = include_str!("py/tarn_zones.py");

/// Where Python environments for a lake are kept.
#[derive(Debug, Clone)]
pub struct Python {
    /// The interpreter venvs are made from (`TARN_PYTHON`, else `python3`).
    base: PathBuf,
    /// `.tarn/` of the lake.
    state: PathBuf,
    /// Where venvs are kept: `TARN_VENV_CACHE`, else `.tarn/venvs/` of the lake.
    venvs: PathBuf,
    /// The lake's `shared/` folder.
    shared: PathBuf,
    /// Serialises venv builds within this process.
    building: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// What a module runs with.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The venv's interpreter.
    pub python: PathBuf,
    /// The lambda runner script.
    pub runner: PathBuf,
    /// Folders to put on the module's path: its shared modules and tarn's shims.
    pub path: Vec<PathBuf>,
}

impl Python {
    pub fn new(lake_root: &Path) -> Python {
        Python {
            base: std::env::var_os("TARN_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3")),
            state: lake_root.join(".tarn"),
            venvs: std::env::var_os("TARN_VENV_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| lake_root.join(".tarn").join("venvs")),
            shared: lake_root.join(tarn_config::SHARED_DIR),
            building: Default::default(),
        }
    }

    /// The environment for `module`, building its venv on first use.
    pub async fn env_for(&self, module: &Module) -> Result<PythonEnv, ProcessError> {
        let runtime = self.runtime()?;
        let venv = self.venv(&module.requirements.packages).await?;
        let mut path = vec![runtime.clone()];
        if !module.requirements.shared_modules.is_empty() {
            path.insert(0, self.shared_dir(module)?);
        }
        Ok(PythonEnv {
            python: venv.join("bin").join("python"),
            runner: runtime.join("lambda_runner.py"),
            path,
        })
    }

    /// tarn's runtime files, written once per content.
    fn runtime(&self) -> Result<PathBuf, ProcessError> {
        let hash = hex::encode(
            &sha2::Sha256::digest(
                [LAMBDA_RUNNER, TARN_ZONES]
                    .into_iter()
                    .chain(AWSGLUE.iter().map(|(_, text)| *text))
                    .collect::<String>()
                    .as_bytes(),
            )[..8],
        );
        let dir = self.state.join("runtime").join(hash);
        if dir.join("lambda_runner.py").is_file() {
            return Ok(dir);
        }
        let io = |e: std::io::Error| ProcessError::io(&dir, e);
        let tmp = self
            .state
            .join("runtime")
            .join(format!(".{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(tmp.join("awsglue")).map_err(io)?;
        std::fs::write(tmp.join("lambda_runner.py"), LAMBDA_RUNNER).map_err(io)?;
        for (name, text) in AWSGLUE {
            std::fs::write(tmp.join(name), text).map_err(io)?;
        }
        std::fs::write(tmp.join("tarn_zones.py"), TARN_ZONES).map_err(io)?;
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process wrote the same files first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }

    /// A folder holding links to just the module's shared modules.
    fn shared_dir(&self, module: &Module) -> Result<PathBuf, ProcessError> {
        let mut names = module.requirements.shared_modules.clone();
        names.sort();
        let hash = hex::encode(&sha2::Sha256::digest(names.join("\n").as_bytes())[..8]);
        let dir = self.state.join("shared").join(hash);
        let io = |e: std::io::Error| ProcessError::io(&dir, e);
        std::fs::create_dir_all(&dir).map_err(io)?;
        for name in &names {
            for candidate in [
                self.shared.join(name),
                self.shared.join(format!("{name}.py")),
            ] {
                if candidate.exists() {
                    let link = dir.join(candidate.file_name().expect("a name"));
                    if std::fs::symlink_metadata(&link).is_err() {
                        let _ = std::os::unix::fs::symlink(&candidate, &link);
                    }
                }
            }
        }
        Ok(dir)
    }

    /// The interpreter commands run with when they bring no requirements.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The venv for a pip requirements file (`-r FILE`), built once per content; with
    /// `system_packages` it also sees the interpreter's installed packages.
    pub async fn venv_for_requirements(
        &self,
        file: &Path,
        system_packages: bool,
    ) -> Result<PathBuf, ProcessError> {
        let text = std::fs::read_to_string(file).map_err(|e| ProcessError::io(file, e))?;
        let args = vec!["-r".to_string(), file.display().to_string()];
        let key = format!("requirements file\n{system_packages}\n{text}");
        self.build_venv(&key, &args, system_packages).await
    }

    /// The venv for `packages` (pip requirements), built once per set.
    pub async fn venv(&self, packages: &[String]) -> Result<PathBuf, ProcessError> {
        let mut sorted = packages.to_vec();
        sorted.sort();
        self.build_venv(&sorted.join("\n"), packages, false).await
    }

    /// A venv keyed by the interpreter's version and `key`, with `pip install PIP_ARGS` run in
    /// it; built into a temporary folder and renamed into place, so a half-built venv is never
    /// used.
    async fn build_venv(
        &self,
        key: &str,
        pip_args: &[String],
        system_packages: bool,
    ) -> Result<PathBuf, ProcessError> {
        let version = tokio::process::Command::new(&self.base)
            .arg("--version")
            .output()
            .await
            .map_err(|source| ProcessError::NoPython {
                python: self.base.clone(),
                source,
            })?;
        let key = format!("{}\n{key}", String::from_utf8_lossy(&version.stdout).trim());
        let hash = hex::encode(&sha2::Sha256::digest(key.as_bytes())[..10]);
        let root = self.venvs.clone();
        let dir = root.join(&hash);
        if dir.join("bin/python").exists() {
            return Ok(dir);
        }
        let _guard = self.building.lock().await;
        if dir.join("bin/python").exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&root).map_err(|e| ProcessError::io(&root, e))?;
        let tmp = root.join(format!(".{hash}.{}", uuid::Uuid::new_v4()));
        let mut make = tokio::process::Command::new(&self.base);
        make.args(["-m", "venv"]);
        if pip_args.is_empty() {
            make.arg("--without-pip");
        }
        if system_packages {
            make.arg("--system-site-packages");
        }
        let out = make
            .arg(&tmp)
            .output()
            .await
            .map_err(|source| ProcessError::NoPython {
                python: self.base.clone(),
                source,
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ProcessError::Venv {
                python: self.base.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        if !pip_args.is_empty() {
            let out = tokio::process::Command::new(tmp.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(pip_args)
                .output()
                .await
                .map_err(|source| ProcessError::NoPip {
                    venv: tmp.clone(),
                    source,
                })?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(ProcessError::Install {
                    packages: pip_args.join(" "),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }
}
