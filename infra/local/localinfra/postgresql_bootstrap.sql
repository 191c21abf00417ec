-- Run in FerretDB's database on every start of the local PostgreSQL (idempotent).
--
-- FerretDB 1.24 stores a collection as a table with one jsonb column, _jsonb, and turns an
-- index on field f into a B-tree on (_jsonb -> 'f'). It pushes an equality filter down as
-- _jsonb -> 'f' @> '"value"', which a B-tree cannot answer; a GIN index on the same expression
-- (jsonb_path_ops) can. This trigger gives every B-tree FerretDB creates a GIN companion per
-- indexed field, so each pushed-down equality is answered from an index.
-- A dotted field a.b is pushed down as _jsonb #> '{a,b}': its companion uses that expression.
-- (FerretDB's embeddable package does not push dotted paths down yet; the companion is ready.)

CREATE OR REPLACE FUNCTION clinical_field_indexes() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
    key_count int;
    k int;
    definition text;
    path text[];
    expression text;
BEGIN
    FOR created IN
        SELECT c.oid, c.relname, i.indrelid::regclass AS tab, i.indnkeyatts
        FROM pg_event_trigger_ddl_commands() AS d
        JOIN pg_index AS i ON i.indexrelid = d.objid
        JOIN pg_class AS c ON c.oid = d.objid
        JOIN pg_am AS am ON am.oid = c.relam
        WHERE d.command_tag = 'CREATE INDEX' AND am.amname = 'btree'
    LOOP
        key_count := created.indnkeyatts;
        FOR k IN 1..key_count LOOP
            definition := pg_get_indexdef(created.oid, k, false);
            -- FerretDB writes (_jsonb -> 'a'::text) or ((_jsonb -> 'a'::text) -> 'b'::text).
            CONTINUE WHEN definition !~ '^\(*_jsonb( -> ''[^'']*''::text\)*)+$';
            SELECT array_agg(m[1]) INTO path
            FROM regexp_matches(definition, '''([^'']*)''::text', 'g') AS m;
            IF array_length(path, 1) = 1 THEN
                expression := format('(_jsonb -> %L)', path[1]);
            ELSE
                expression := format('(_jsonb #> %L::text[])', path);
            END IF;
            -- fastupdate off: a lookup would otherwise also read the index's pending list,
            -- which after a bulk insert holds thousands of entries until the next vacuum.
            EXECUTE format(
                'CREATE INDEX IF NOT EXISTS %I ON %s USING gin (%s jsonb_path_ops) '
                'WITH (fastupdate = off)',
                left(created.relname, 56) || '_gin' || k, created.tab, expression
            );
        END LOOP;
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS clinical_field_indexes;
CREATE EVENT TRIGGER clinical_field_indexes ON ddl_command_end
    WHEN TAG IN ('CREATE INDEX')
    EXECUTE FUNCTION clinical_field_indexes();

-- Companions made before fastupdate was turned off for them.
DO $$
DECLARE
    companion record;
BEGIN
    FOR companion IN
        SELECT c.oid::regclass AS name
        FROM pg_class AS c JOIN pg_am AS am ON am.oid = c.relam
        WHERE am.amname = 'gin' AND c.relname ~ '_gin[0-9]+$'
          AND NOT coalesce(c.reloptions @> ARRAY['fastupdate=off'], false)
    LOOP
        EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', companion.name);
    END LOOP;
END
$$;
