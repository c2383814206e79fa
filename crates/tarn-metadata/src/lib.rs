//! tarn-metadata
