//! tarn-storage
