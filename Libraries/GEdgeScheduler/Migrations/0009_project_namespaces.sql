-- A project owns the namespaces bound to it (besides its own, named after it), and has a
-- policy: the Pod Security Standard its pods meet and the kinds it may deploy.

CREATE TABLE project_namespaces (
    namespace       text        PRIMARY KEY,
    project_name    text        NOT NULL,
    bound_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX project_namespaces_project_idx ON project_namespaces (project_name);

CREATE TABLE project_policies (
    project_name    text        PRIMARY KEY,
    pod_security    text        NOT NULL DEFAULT 'baseline' CHECK (pod_security IN ('baseline', 'restricted')),
    kinds           text[],
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Namespaces already in use keep their owner.
INSERT INTO project_namespaces (namespace, project_name)
SELECT DISTINCT ON (namespace) namespace, project_name FROM edge_services ORDER BY namespace, created_at
ON CONFLICT DO NOTHING;
INSERT INTO project_namespaces (namespace, project_name)
SELECT DISTINCT ON (namespace) namespace, project_name FROM workflows WHERE state <> 'canceled' ORDER BY namespace, created_at
ON CONFLICT DO NOTHING;
