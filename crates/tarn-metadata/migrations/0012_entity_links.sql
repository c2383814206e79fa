-- What MLflow calls entity associations: a trace linked to a run (`link_traces_to_run`, which
-- GenAI evaluation uses) or to the prompt versions it used (`link-prompts`).
CREATE TABLE ml_entity_links (
    source_type      TEXT NOT NULL,
    source_id        TEXT NOT NULL,
    destination_type TEXT NOT NULL,
    destination_id   TEXT NOT NULL,
    PRIMARY KEY (source_type, source_id, destination_type, destination_id)
);
CREATE INDEX ml_entity_links_by_destination ON ml_entity_links (destination_type, destination_id);
