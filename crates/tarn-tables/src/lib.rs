//! tarn-tables
