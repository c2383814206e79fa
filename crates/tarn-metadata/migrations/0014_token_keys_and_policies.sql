-- A token may carry an AWS access key pair (for clients that sign with Signature V4, such as
-- boto3 against the Glue API): the access key id in the clear, the secret sealed under a key
-- kept outside the store (HMAC verification needs the secret itself, so it cannot be hashed).
ALTER TABLE api_tokens ADD COLUMN aws_access_key TEXT;
ALTER TABLE api_tokens ADD COLUMN aws_secret_sealed TEXT;
CREATE UNIQUE INDEX api_tokens_aws_key ON api_tokens (aws_access_key) WHERE aws_access_key IS NOT NULL;
-- The policies a token carries (a JSON list of names, from `policies:` in tarn.yml or built in);
-- NULL for tokens made before: `read-only` when read_only is set, else `full`.
ALTER TABLE api_tokens ADD COLUMN policies TEXT;
