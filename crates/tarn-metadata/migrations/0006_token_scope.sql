-- A token may be limited to writing one domain, and may expire (the tokens pipeline steps get).
ALTER TABLE api_tokens ADD COLUMN scope TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
