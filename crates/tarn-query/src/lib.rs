//! tarn-query
