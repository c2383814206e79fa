-- Roles one node of a deployment holds at a time (the coordinator: watcher, sweeps and
-- schedules), each leased by its holder (`HOST:PID:RANDOM`) until a time it renews.
CREATE TABLE node_roles (
    role        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    since       TEXT NOT NULL
);
