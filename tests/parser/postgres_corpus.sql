-- The corpus parser.postgres is checked against PostgreSQL with (test_postgres_oracle.py).
--
-- A line "-- schema" starts the script that builds the database; every line "-- <expectation>:
-- <title>" starts a case, one statement, run against that schema with search_path app, aux:
--   exact       the parser's dependencies equal the relations the server's plan scans
--               (after view expansion); nothing in the statement can be pruned;
--   superset    the parser reports every relation the plan scans and more: the planner pruned
--               something (partitions, a removed join, a constant-false branch, an unused
--               CTE), or the parser adds what a write through a parent announces (ancestors);
--   everything  the parser answers "every relation" (a function or a sequence it cannot see
--               into, a view of the system schemas).

-- schema
CREATE SCHEMA app;
CREATE SCHEMA aux;
CREATE SCHEMA "Sales";
SET search_path = app, aux;

CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (
    id int PRIMARY KEY, name text NOT NULL, email text, region_id int REFERENCES regions,
    created_at timestamptz NOT NULL DEFAULT now(), data jsonb
);
CREATE TABLE categories (id int PRIMARY KEY, name text, parent_id int REFERENCES categories);
CREATE TABLE products (
    id int PRIMARY KEY, sku text UNIQUE, name text, price numeric,
    category_id int REFERENCES categories, tags text[]
);
CREATE TABLE orders (
    id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(), status text, total numeric
);
CREATE TABLE order_items (
    order_id int REFERENCES orders ON DELETE CASCADE, product_id int REFERENCES products,
    qty int, price numeric, PRIMARY KEY (order_id, product_id)
);
CREATE TABLE payments (id int PRIMARY KEY, order_id int REFERENCES orders, amount numeric, paid_at timestamptz);
CREATE TABLE employees (id int PRIMARY KEY, manager_id int REFERENCES employees, name text, salary numeric);
CREATE TABLE tags (id int PRIMARY KEY, label text);
CREATE TABLE product_tags (product_id int REFERENCES products, tag_id int REFERENCES tags);
CREATE TABLE "UserAccounts" (id int PRIMARY KEY, "DisplayName" text, "isActive" boolean);
CREATE TABLE "odd name" (id int, "select" int);

-- A partitioned table (a default partition, one partition itself partitioned).
CREATE TABLE events (at date NOT NULL, kind text, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
    PARTITION BY LIST (kind);
CREATE TABLE events_2024_click PARTITION OF events_2024 FOR VALUES IN ('click');
CREATE TABLE events_2024_rest PARTITION OF events_2024 DEFAULT;
CREATE TABLE events_other PARTITION OF events DEFAULT;

-- Table inheritance.
CREATE TABLE logs (id int, at timestamptz, line text);
CREATE TABLE logs_archive (archived_by text) INHERITS (logs);
CREATE TABLE logs_recent () INHERITS (logs);

-- Another schema; aux.customers is shadowed by app.customers for unqualified names.
CREATE TABLE aux.notes (id int PRIMARY KEY, customer_id int, body text);
CREATE TABLE aux.audit (id int, at timestamptz, what text);
CREATE TABLE aux.customers (id int, legacy_name text);
CREATE TABLE "Sales"."Q1" (id int, amount numeric, region_id int);
CREATE TABLE "Sales".targets (region_id int, goal numeric);

-- Functions: two that read tables (STABLE), one IMMUTABLE, one quoted and VOLATILE.
CREATE FUNCTION order_count(customer int) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM orders WHERE customer_id = customer $$;
CREATE FUNCTION customers_in(region int) RETURNS SETOF customers LANGUAGE sql STABLE
    AS $$ SELECT * FROM customers WHERE region_id = region $$;
CREATE FUNCTION double_it(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;
CREATE FUNCTION "Shout"(x text) RETURNS text LANGUAGE plpgsql VOLATILE
    AS $$ BEGIN RETURN upper(x); END $$;

-- Views, views of views, a view in another schema, a view over a partitioned table.
CREATE VIEW customer_totals AS
    SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.total), 0) AS total
    FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
CREATE VIEW big_customers AS SELECT * FROM customer_totals WHERE total > 1000;
CREATE VIEW big_customer_notes AS
    SELECT b.*, n.body FROM big_customers b JOIN aux.notes n ON n.customer_id = b.id;
CREATE VIEW order_lines AS
    SELECT o.id AS order_id, p.name AS product, i.qty, i.qty * i.price AS amount
    FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id;
CREATE VIEW active_accounts AS SELECT "DisplayName" FROM "UserAccounts" WHERE "isActive";
CREATE VIEW all_people AS
    SELECT name FROM customers UNION SELECT name FROM employees UNION SELECT legacy_name FROM aux.customers;
CREATE VIEW recent_events AS SELECT * FROM events WHERE at >= '2024-01-01';
CREATE VIEW paid_orders AS
    SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id);
CREATE VIEW latest_payment AS
    SELECT o.id, lp.amount FROM orders o
    CROSS JOIN LATERAL (SELECT amount FROM payments p WHERE p.order_id = o.id ORDER BY paid_at DESC LIMIT 1) lp;
CREATE VIEW aux.region_sales AS
    SELECT r.name, sum(q.amount) AS amount FROM regions r JOIN "Sales"."Q1" q ON q.region_id = r.id GROUP BY r.name;
CREATE VIEW "Sales"."Mixed View" AS SELECT * FROM "Sales"."Q1" WHERE amount > 0;
CREATE VIEW only_logs AS SELECT * FROM ONLY logs;
CREATE VIEW orders_left AS
    SELECT o.id, o.total, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id;
CREATE VIEW orders_simple AS SELECT id, status, total FROM orders;
CREATE VIEW expensive_products AS SELECT * FROM products WHERE price > 100;
CREATE VIEW nested_top AS SELECT * FROM big_customer_notes WHERE orders > 2;
CREATE VIEW with_cte AS
    WITH t AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY customer_id)
    SELECT c.name, t.s FROM customers c JOIN t ON t.customer_id = c.id;
CREATE VIEW series_view AS SELECT g AS n FROM generate_series(1, 10) g;
CREATE VIEW calls_user_function AS SELECT id, order_count(id) FROM customers;

CREATE MATERIALIZED VIEW sales_summary AS
    SELECT p.category_id, sum(i.qty * i.price) AS revenue
    FROM order_items i JOIN products p ON p.id = i.product_id GROUP BY p.category_id;
CREATE VIEW over_matview AS SELECT s.*, c.name FROM sales_summary s JOIN categories c ON c.id = s.category_id;

CREATE SEQUENCE ticket_seq;

CREATE EXTENSION file_fdw SCHEMA aux;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE imported (id int, v text) SERVER files OPTIONS (filename '/dev/null', format 'csv');

CREATE TEMP TABLE scratch (id int, v text);

-- exact: one table
SELECT * FROM customers

-- exact: schema-qualified table
SELECT id, name FROM app.customers WHERE id = $1

-- exact: a table found through the second schema of the search path
SELECT body FROM notes WHERE customer_id = $1

-- exact: a qualified table of a schema off the search path
SELECT * FROM "Sales"."Q1"

-- exact: a shadowed name, qualified
SELECT legacy_name FROM aux.customers

-- exact: unqualified name resolves to the first schema of the search path
SELECT name FROM customers WHERE email LIKE '%@example.com'

-- exact: quoted mixed-case table and column
SELECT "DisplayName" FROM "UserAccounts" WHERE "isActive"

-- exact: unquoted name folds to lower case
SELECT * FROM CUSTOMERS

-- exact: quoted name with a space and a reserved column
SELECT "select" FROM "odd name"

-- exact: alias everywhere
SELECT c.name AS customer FROM customers AS c WHERE c.id > 10 ORDER BY c.name

-- exact: inner join
SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id

-- exact: join using
SELECT * FROM customers JOIN aux.notes USING (id)

-- exact: natural join
SELECT * FROM tags NATURAL JOIN product_tags

-- exact: three-way join
SELECT c.name, o.id, i.qty FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id

-- exact: left join whose columns are used
SELECT c.name, n.body FROM customers c LEFT JOIN notes n ON n.customer_id = c.id

-- exact: right join
SELECT o.id, c.name FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id

-- exact: full join
SELECT * FROM customers c FULL JOIN aux.customers a ON a.id = c.id

-- exact: cross join
SELECT r.name, t.label FROM regions r CROSS JOIN tags t

-- exact: comma join
SELECT p.name, c.name FROM products p, categories c WHERE c.id = p.category_id

-- exact: self join
SELECT e.name, m.name AS manager FROM employees e JOIN employees m ON m.id = e.manager_id

-- exact: join across schemas with quoted names
SELECT r.name, q.amount FROM regions r JOIN "Sales"."Q1" q ON q.region_id = r.id JOIN "Sales".targets t ON t.region_id = r.id

-- exact: join on an expression with a cast
SELECT * FROM customers c JOIN aux.notes n ON n.customer_id::text = c.id::text

-- exact: group by, having
SELECT customer_id, count(*) FROM orders GROUP BY customer_id HAVING count(*) > 1

-- exact: aggregates with filter and order by
SELECT string_agg(name, ', ' ORDER BY name) FILTER (WHERE price > 10), avg(price) FROM products

-- exact: within group
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders

-- exact: grouping sets
SELECT status, customer_id, sum(total) FROM orders GROUP BY GROUPING SETS ((status), (customer_id), ())

-- exact: rollup
SELECT region_id, name, count(*) FROM customers GROUP BY ROLLUP (region_id, name)

-- exact: cube
SELECT status, date_trunc('month', created_at), sum(total) FROM orders GROUP BY CUBE (status, date_trunc('month', created_at))

-- exact: distinct on
SELECT DISTINCT ON (customer_id) customer_id, id, total FROM orders ORDER BY customer_id, created_at DESC

-- exact: window function
SELECT id, total, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) FROM orders

-- exact: named window and frame
SELECT id, sum(total) OVER w, avg(total) OVER w FROM orders WINDOW w AS (ORDER BY created_at ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)

-- exact: window over a join
SELECT c.name, o.total, lag(o.total) OVER (PARTITION BY c.id ORDER BY o.created_at) FROM customers c JOIN orders o ON o.customer_id = c.id

-- exact: limit, offset, fetch with ties
SELECT * FROM products ORDER BY price DESC OFFSET 5 ROWS FETCH FIRST 3 ROWS WITH TIES

-- exact: limit all, nulls last
SELECT * FROM customers ORDER BY email NULLS LAST LIMIT ALL

-- exact: scalar subquery in the select list
SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c

-- exact: subquery in where (in)
SELECT * FROM products WHERE id IN (SELECT product_id FROM order_items WHERE qty > 10)

-- exact: subquery in where (exists)
SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)

-- exact: subquery in where (not exists)
SELECT * FROM customers c WHERE NOT EXISTS (SELECT 1 FROM aux.notes n WHERE n.customer_id = c.id)

-- exact: subquery in where (not in)
SELECT * FROM tags WHERE id NOT IN (SELECT tag_id FROM product_tags WHERE tag_id IS NOT NULL)

-- exact: subquery in where (any)
SELECT * FROM orders WHERE total > ANY (SELECT amount FROM payments)

-- exact: subquery in where (all)
SELECT * FROM orders WHERE total >= ALL (SELECT amount FROM payments WHERE amount IS NOT NULL)

-- exact: subquery in having
SELECT customer_id FROM orders GROUP BY customer_id HAVING sum(total) > (SELECT avg(amount) FROM payments)

-- exact: subquery in order by
SELECT * FROM products p ORDER BY (SELECT count(*) FROM product_tags t WHERE t.product_id = p.id) DESC

-- exact: subquery in a case
SELECT id, CASE WHEN total > (SELECT avg(total) FROM orders) THEN 'big' ELSE 'small' END FROM orders

-- exact: subquery in from
SELECT s.customer_id, s.n FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) s WHERE s.n > 2

-- exact: nested subqueries
SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE id IN (SELECT order_id FROM payments WHERE amount > 100))

-- exact: array subquery
SELECT p.name, ARRAY(SELECT t.label FROM product_tags pt JOIN tags t ON t.id = pt.tag_id WHERE pt.product_id = p.id) FROM products p

-- exact: row comparison with a subquery
SELECT * FROM orders WHERE (customer_id, total) IN (SELECT customer_id, max(total) FROM orders GROUP BY customer_id)

-- exact: correlated subquery in a join condition
SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id AND o.total = (SELECT max(total) FROM orders x WHERE x.customer_id = c.id)

-- exact: union
SELECT name FROM customers UNION SELECT name FROM employees

-- exact: union all of three
SELECT id FROM customers UNION ALL SELECT id FROM orders UNION ALL SELECT id FROM products

-- exact: intersect
SELECT id FROM customers INTERSECT SELECT customer_id FROM orders

-- exact: except
SELECT id FROM customers EXCEPT SELECT customer_id FROM aux.notes

-- exact: parenthesised set operation with order and limit
(SELECT name FROM customers ORDER BY name LIMIT 5) UNION ALL (SELECT name FROM employees ORDER BY name LIMIT 5) ORDER BY 1

-- exact: set operation inside a subquery
SELECT count(*) FROM (SELECT id FROM customers UNION SELECT id FROM aux.customers) u

-- exact: values
VALUES (1, 'a'), (2, 'b')

-- exact: values joined to a table
SELECT v.x, c.name FROM (VALUES (1), (2)) AS v(x) JOIN customers c ON c.id = v.x

-- exact: values in a union
SELECT id FROM tags UNION VALUES (0)

-- exact: table statement
TABLE regions

-- exact: cte
WITH big AS (SELECT * FROM orders WHERE total > 100) SELECT * FROM big JOIN customers c ON c.id = big.customer_id

-- exact: two ctes, the second reading the first
WITH a AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY 1), b AS (SELECT * FROM a WHERE s > 10) SELECT * FROM b JOIN customers ON customers.id = b.customer_id

-- exact: cte shadowing a table name
WITH customers AS (SELECT * FROM employees) SELECT * FROM customers

-- exact: cte named like a table, the table read inside it
WITH orders AS (SELECT * FROM orders WHERE total > 0) SELECT * FROM orders

-- exact: materialized cte
WITH t AS MATERIALIZED (SELECT * FROM payments) SELECT * FROM t WHERE amount > 5

-- exact: not materialized cte
WITH t AS NOT MATERIALIZED (SELECT * FROM payments) SELECT * FROM t WHERE amount > 5

-- exact: recursive cte
WITH RECURSIVE chain AS (SELECT id, manager_id, name FROM employees WHERE id = $1 UNION ALL SELECT e.id, e.manager_id, e.name FROM employees e JOIN chain ON e.id = chain.manager_id) SELECT * FROM chain

-- exact: recursive cte over a tree with a join after
WITH RECURSIVE tree AS (SELECT id, parent_id FROM categories WHERE parent_id IS NULL UNION ALL SELECT c.id, c.parent_id FROM categories c JOIN tree t ON c.parent_id = t.id) SELECT p.* FROM tree JOIN products p ON p.category_id = tree.id

-- exact: recursive counter
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT n.i, r.name FROM n JOIN regions r ON r.id = n.i

-- exact: recursive cte with a search clause
WITH RECURSIVE tree AS (SELECT id, parent_id FROM categories WHERE parent_id IS NULL UNION ALL SELECT c.id, c.parent_id FROM categories c JOIN tree t ON c.parent_id = t.id) SEARCH DEPTH FIRST BY id SET ordercol SELECT * FROM tree ORDER BY ordercol

-- exact: cte inside a subquery
SELECT * FROM (WITH t AS (SELECT * FROM tags) SELECT * FROM t) s JOIN product_tags pt ON pt.tag_id = s.id

-- exact: lateral subquery
SELECT c.name, last.total FROM customers c CROSS JOIN LATERAL (SELECT total FROM orders o WHERE o.customer_id = c.id ORDER BY created_at DESC LIMIT 1) last

-- exact: left join lateral
SELECT c.name, x.n FROM customers c LEFT JOIN LATERAL (SELECT count(*) AS n FROM aux.notes WHERE customer_id = c.id) x ON true

-- exact: lateral generate_series
SELECT o.id, g FROM orders o, LATERAL generate_series(1, o.id) g

-- exact: unnest of a column
SELECT p.id, t FROM products p, unnest(p.tags) AS t

-- exact: unnest with ordinality
SELECT * FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY AS u(v, n) JOIN tags ON tags.label = u.v

-- exact: jsonb_each over a column
SELECT c.id, kv.key FROM customers c, jsonb_each(c.data) AS kv

-- exact: jsonb_array_elements in a lateral join
SELECT c.id, e FROM customers c LEFT JOIN LATERAL jsonb_array_elements(c.data -> 'items') e ON true

-- exact: jsonb_to_recordset
SELECT * FROM customers c, jsonb_to_recordset(c.data -> 'rows') AS r(a int, b text)

-- exact: rows from
SELECT * FROM ROWS FROM (generate_series(1, 3), unnest(ARRAY[1, 2])) AS r(a, b) JOIN regions ON regions.id = r.a

-- exact: regexp_split_to_table
SELECT w, count(*) FROM products, regexp_split_to_table(name, ' ') AS w GROUP BY w

-- exact: generate_series alone joined to a table
SELECT d::date, count(o.id) FROM generate_series('2024-01-01'::date, '2024-01-31', '1 day') d LEFT JOIN orders o ON o.created_at::date = d::date GROUP BY 1

-- exact: tablesample
SELECT * FROM orders TABLESAMPLE SYSTEM (10)

-- exact: for update
SELECT * FROM orders WHERE id = $1 FOR UPDATE

-- exact: for update of an alias
SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id FOR UPDATE OF o SKIP LOCKED

-- exact: parameters of several types
SELECT * FROM orders WHERE customer_id = $1 AND status = $2 AND total > $3 AND id = ANY($4::int[])

-- exact: operators and expressions
SELECT id FROM customers WHERE data @> '{"vip": true}' AND data ? 'email' AND name ~* '^a' AND email IS DISTINCT FROM 'x' AND created_at BETWEEN now() - interval '7 days' AND now()

-- exact: immutable user function
SELECT double_it(price) FROM products

-- exact: builtin functions
SELECT lower(name), coalesce(email, ''), nullif(name, ''), greatest(1, 2), length(name), to_char(created_at, 'YYYY') FROM customers

-- exact: string concatenation and casts
SELECT name || ' <' || coalesce(email, '?') || '>', id::text, CAST(id AS bigint) FROM customers

-- exact: extract and at time zone
SELECT extract(year FROM created_at), created_at AT TIME ZONE 'UTC' FROM orders

-- exact: dollar-quoted and escape strings
SELECT $$it's$$, E'tab\there', name FROM customers WHERE name <> $q$;$q$

-- exact: comments inside the statement
SELECT /* block /* nested */ comment */ id -- trailing
FROM customers

-- exact: whole-row reference
SELECT c FROM customers c

-- exact: row constructor
SELECT ROW(id, name) FROM customers

-- exact: count star on a view of a view
SELECT count(*) FROM big_customers

-- exact: a view
SELECT * FROM customer_totals

-- exact: a view of a view of a view (of another schema)
SELECT * FROM big_customer_notes

-- exact: four levels of views
SELECT * FROM nested_top

-- exact: a view joined to a table
SELECT ol.*, c.name FROM order_lines ol JOIN orders o ON o.id = ol.order_id JOIN customers c ON c.id = o.customer_id

-- exact: a view over a quoted table
SELECT * FROM active_accounts

-- exact: a view with a union
SELECT * FROM all_people

-- exact: a view with exists
SELECT * FROM paid_orders

-- exact: a view with a lateral join
SELECT * FROM latest_payment

-- exact: a view of another schema over a quoted schema
SELECT * FROM aux.region_sales

-- exact: a view found through the search path
SELECT * FROM region_sales

-- exact: a quoted view in a quoted schema
SELECT * FROM "Sales"."Mixed View"

-- exact: a view with a cte
SELECT * FROM with_cte

-- exact: a view over generate_series
SELECT * FROM series_view s JOIN regions r ON r.id = s.n

-- exact: two views in one query
SELECT * FROM customer_totals t JOIN order_lines l ON true

-- exact: a view in a subquery
SELECT * FROM customers WHERE id IN (SELECT id FROM big_customers)

-- exact: a view in a cte
WITH t AS (SELECT * FROM order_lines) SELECT product, sum(amount) FROM t GROUP BY product

-- exact: a materialized view
SELECT * FROM sales_summary

-- exact: a view over a materialized view
SELECT * FROM over_matview

-- exact: a materialized view joined to its own source table
SELECT s.revenue, p.name FROM sales_summary s JOIN products p ON p.category_id = s.category_id

-- exact: a temporary table
SELECT * FROM scratch

-- exact: a temporary table through pg_temp
SELECT * FROM pg_temp.scratch JOIN customers c ON c.id = scratch.id

-- exact: a foreign table
SELECT * FROM imported

-- exact: a system catalog table
SELECT relname FROM pg_class WHERE relkind = 'r'

-- exact: a qualified system catalog table
SELECT count(*) FROM pg_catalog.pg_namespace

-- exact: ONLY on an inheritance parent
SELECT * FROM ONLY logs

-- exact: a view reading ONLY a parent
SELECT * FROM only_logs

-- superset: a child table with no children (its parent is added: a write through it)
SELECT * FROM logs_recent

-- exact: insert values
INSERT INTO tags (id, label) VALUES ($1, $2)

-- exact: insert select
INSERT INTO aux.audit (id, at, what) SELECT id, now(), 'copied' FROM orders WHERE status = 'x'

-- exact: insert on conflict do update
INSERT INTO products (id, sku, name) VALUES ($1, $2, $3) ON CONFLICT (sku) DO UPDATE SET name = excluded.name

-- exact: insert on conflict do nothing returning
INSERT INTO regions (id, name) VALUES (1, 'north') ON CONFLICT DO NOTHING RETURNING id

-- exact: insert default values
INSERT INTO aux.audit DEFAULT VALUES

-- exact: update
UPDATE orders SET status = 'paid' WHERE id = $1

-- exact: update from
UPDATE orders o SET total = s.t FROM (SELECT order_id, sum(qty * price) AS t FROM order_items GROUP BY order_id) s WHERE s.order_id = o.id

-- exact: update with a subquery in set
UPDATE customers SET email = (SELECT body FROM aux.notes WHERE notes.customer_id = customers.id LIMIT 1)

-- exact: update returning
UPDATE products SET price = price * 1.1 WHERE category_id = $1 RETURNING id, price

-- exact: delete
DELETE FROM payments WHERE amount = 0

-- exact: delete using
DELETE FROM order_items i USING orders o WHERE o.id = i.order_id AND o.status = 'cancelled'

-- exact: delete with exists
DELETE FROM tags t WHERE NOT EXISTS (SELECT 1 FROM product_tags pt WHERE pt.tag_id = t.id)

-- exact: data-modifying cte
WITH moved AS (DELETE FROM aux.audit WHERE at < now() - interval '1 year' RETURNING *) INSERT INTO aux.notes (id, body) SELECT id, what FROM moved

-- exact: data-modifying cte read by a select
WITH upd AS (UPDATE orders SET status = 'late' WHERE created_at < $1 RETURNING id) SELECT count(*) FROM upd

-- exact: merge
MERGE INTO products p USING (SELECT * FROM order_items) i ON i.product_id = p.id WHEN MATCHED THEN UPDATE SET price = i.price WHEN NOT MATCHED THEN DO NOTHING

-- exact: merge with insert and delete
MERGE INTO regions r USING "Sales".targets t ON t.region_id = r.id WHEN MATCHED AND t.goal IS NULL THEN DELETE WHEN NOT MATCHED THEN INSERT (id, name) VALUES (t.region_id, 'new')

-- exact: insert into a temporary table
INSERT INTO scratch SELECT id, name FROM customers

-- exact: update through an automatically updatable view
UPDATE orders_simple SET status = 'x' WHERE id = 1

-- exact: insert through a view with a where clause
INSERT INTO expensive_products (id, name, price) VALUES (1, 'x', 500)

-- exact: a quoted alias
SELECT * FROM customers AS "Kunde" WHERE "Kunde".id = 1

-- superset: a left join the planner removes (unique key, no column used)
SELECT o.id FROM orders o LEFT JOIN customers c ON c.id = o.customer_id

-- superset: a constant-false condition
SELECT * FROM orders WHERE 1 = 0

-- superset: a constant-false subquery
SELECT * FROM customers WHERE false AND EXISTS (SELECT 1 FROM orders)

-- superset: an unused cte
WITH unused AS (SELECT * FROM payments) SELECT * FROM regions

-- superset: a union branch behind a constant-false condition
SELECT id FROM customers UNION ALL SELECT id FROM employees WHERE false

-- exact: a view read for some of its columns (inner joins stay)
SELECT order_id, qty FROM order_lines

-- superset: a view whose left-joined table the planner removes
SELECT id, total FROM orders_left

-- superset: a partitioned table, every partition
SELECT * FROM events

-- superset: a partitioned table, pruned to one partition
SELECT * FROM events WHERE at = '2023-06-01'

-- superset: a partitioned table, pruned by a parameter
SELECT * FROM events WHERE at = $1

-- superset: a sub-partitioned partition
SELECT * FROM events_2024 WHERE kind = 'click'

-- superset: a leaf partition (its ancestors are added)
SELECT * FROM events_2024_click

-- superset: a view over a partitioned table
SELECT * FROM recent_events

-- exact: an inheritance parent reads its children
SELECT * FROM logs

-- superset: an inheritance child (its parent is added)
SELECT * FROM logs_archive

-- superset: ONLY on a partitioned table
SELECT * FROM ONLY events

-- superset: insert into a partitioned table
INSERT INTO events (at, kind) VALUES ('2024-02-02', 'click')

-- superset: update of a partitioned table pruned to one partition
UPDATE events SET payload = '{}' WHERE at = '2023-03-03'

-- exact: delete from an inheritance parent
DELETE FROM logs WHERE at < now() - interval '30 days'

-- superset: a join of a partitioned and a plain table
SELECT e.kind, c.name FROM events e JOIN customers c ON c.id = (e.payload ->> 'customer')::int WHERE e.at >= '2024-01-01'

-- superset: a subquery whose result the planner does not need
SELECT id FROM customers WHERE id = 1 OR true OR EXISTS (SELECT 1 FROM orders)

-- everything: a user function that reads tables, in the select list
SELECT id, order_count(id) FROM customers

-- everything: a set-returning user function in from
SELECT * FROM customers_in(1)

-- everything: a view calling a user function
SELECT * FROM calls_user_function

-- everything: a quoted volatile user function
SELECT "Shout"(name) FROM customers

-- everything: a user function in a where clause
SELECT * FROM customers WHERE order_count(id) > 2

-- everything: a sequence read as a relation
SELECT last_value FROM ticket_seq

-- everything: nextval
SELECT nextval('ticket_seq'), name FROM customers

-- everything: query_to_xml runs SQL given as text
SELECT query_to_xml('SELECT * FROM app.orders', true, false, '')

-- everything: a system view
SELECT * FROM pg_tables WHERE schemaname = 'app'

-- everything: an information_schema view
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'

-- everything: a statistics view
SELECT * FROM pg_stat_user_tables

-- everything: a scalar function called in from
SELECT * FROM upper('x') AS u, regions

-- everything: a statistics function
SELECT pg_stat_get_live_tuples('app.orders'::regclass)
