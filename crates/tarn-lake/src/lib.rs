//! tarn-lake
