//! ONNX for tarn without Python or downloads: writing the models tarn's built-in trainers
//! produce ([`write`]), and reading and running models in process ([`Model`]) for batch
//! transform and serving. The runtime covers the operators tarn's own models use and refuses
//! any other by name when a model loads.
//!
//! ```
//! use tarn_onnx::write::{feature_inputs, model, node, value_info, Attr, FLOAT};
//! let (inputs, mut nodes, inits) = feature_inputs(&["a".to_string(), "b".to_string()]);
//! nodes.push(node("LinearRegressor", "ai.onnx.ml", &["features"], &["y"], &[
//!     Attr::Floats("coefficients", vec![2.0, 3.0]),
//!     Attr::Floats("intercepts", vec![1.0]),
//! ]));
//! let bytes = model("demo", &nodes, &inits, &inputs, &[value_info("y", FLOAT, &[None, Some(1)])], &[]);
//! let m = tarn_onnx::Model::load(&bytes).unwrap();
//! let mut feeds = std::collections::HashMap::new();
//! feeds.insert("a".to_string(), tarn_onnx::Value::F32(vec![2], vec![1.0, 2.0]));
//! feeds.insert("b".to_string(), tarn_onnx::Value::F32(vec![2], vec![0.0, 1.0]));
//! let out = m.run(feeds).unwrap();
//! assert_eq!(out[0], tarn_onnx::Value::F32(vec![2, 1], vec![3.0, 8.0]));
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

pub mod proto;
mod runtime;
pub mod write;

pub use proto::ValueInfo;
pub use runtime::{Keys, Model, Value};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a model this reader understands.
    #[error("{0}")]
    Format(String),
    /// The model uses an operator tarn's runtime does not have.
    #[error("the model uses the ONNX operator `{0}`, which tarn's runtime does not run yet; it runs the operators of tarn's built-in models and of scikit-learn models as skl2onnx exports them (scalers, one-hot encoders, linear and logistic models, tree ensembles, ZipMap); export the model with those, or serve it as a python_function model")]
    Unsupported(String),
    /// The input does not fit the model.
    #[error("{0}")]
    Input(String),
}

#[cfg(test)]
mod tests {
    use super::write::{feature_inputs, model, node, value_info, Attr, FLOAT};

    fn linear() -> Vec<u8> {
        let (inputs, mut nodes, inits) = feature_inputs(&["a".to_string(), "b".to_string()]);
        nodes.push(node(
            "LinearRegressor",
            "ai.onnx.ml",
            &["features"],
            &["y"],
            &[
                Attr::Floats("coefficients", vec![2.0, 3.0]),
                Attr::Floats("intercepts", vec![1.0]),
            ],
        ));
        model(
            "m",
            &nodes,
            &inits,
            &inputs,
            &[value_info("y", FLOAT, &[None, Some(1)])],
            &[],
        )
    }

    #[test]
    fn damaged_files_are_errors_not_crashes() {
        let bytes = linear();
        for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(crate::Model::load(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(crate::Model::load(b"not an onnx file at all").is_err());
    }

    #[test]
    fn unknown_operators_are_named() {
        let (inputs, mut nodes, inits) = feature_inputs(&["a".to_string(), "b".to_string()]);
        nodes.push(node(
            "ArrayFeatureExtractor",
            "ai.onnx.ml",
            &["features"],
            &["y"],
            &[],
        ));
        let bytes = model(
            "m",
            &nodes,
            &inits,
            &inputs,
            &[value_info("y", FLOAT, &[None])],
            &[],
        );
        let e = crate::Model::load(&bytes).unwrap_err().to_string();
        assert!(e.contains("`ai.onnx.ml.ArrayFeatureExtractor`"), "{e}");
    }
}
