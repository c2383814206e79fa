"""The part of AWS Glue's `awsglue` package a Python shell job uses, for tarn's glue steps."""
