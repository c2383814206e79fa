-- Which node (HOST:PID) ran each step attempt: with several tarn nodes on one lake, the
-- execution's history says where each attempt ran. Attempts from before are left empty.
ALTER TABLE step_attempts ADD COLUMN node TEXT NOT NULL DEFAULT '';
