-- Web services' primary and secondary keys, each sealed (AES-256-GCM) under the master key.
CREATE TABLE service_keys (
    name_key         TEXT PRIMARY KEY,
    primary_sealed   BLOB NOT NULL,
    secondary_sealed BLOB NOT NULL,
    updated_at       INTEGER NOT NULL
);
