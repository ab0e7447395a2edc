-- Parser cases: one test loops over them (tests/parser/test_cases.py).
--
-- Blocks are separated by blank lines. A block starts with header lines "-- key: value":
--   case:   a title (required)
--   reads:  expected read set, comma-separated, "-" for none
--   writes: expected write set (default: none)
--   kind:   QUERY, WRITE, DDL, TRANSACTION or OTHER (default: QUERY)
--   multiple: yes if the text holds several statements (default: no)
--   views:  name of a view set defined earlier with "-- define views: NAME"
--   error:  Unanalyzable, with the words the message must contain
-- Every following line is the SQL text (none at all means the empty string).
-- A "-- define views: NAME" block holds one CREATE VIEW statement per line.

-- define views: nested
CREATE VIEW v_orders AS SELECT * FROM orders JOIN customers USING (customer_id)
CREATE VIEW "V_Top" AS SELECT * FROM v_orders WHERE amount > (SELECT avg(amount) FROM refunds)
CREATE VIEW v_const AS SELECT 1 AS one
CREATE VIEW v_cte AS WITH orders AS (SELECT 1) SELECT * FROM orders, products

-- define views: cycle
CREATE VIEW a AS SELECT * FROM b JOIN base1
CREATE VIEW b AS SELECT * FROM c
CREATE VIEW c AS SELECT * FROM a UNION SELECT * FROM base2

-- define views: self
CREATE VIEW s AS SELECT * FROM s

-- define views: broken
CREATE VIEW bad AS SELEC * FRM t

-- case: plain select
-- reads: t
SELECT * FROM t

-- case: identifiers fold ASCII case only
-- reads: users, Äb
SELECT * FROM USERS, "Äb"

-- case: three quoting styles
-- reads: t1, t2, t3
SELECT * FROM "T1", [T2], `t3`

-- case: schema qualifiers
-- reads: t, temp.t, aux.u, temp.w
SELECT * FROM main.t, temp.t, AUX.U, "Temp"."W"

-- case: comma join
-- reads: a, b, c
SELECT * FROM a, b, c WHERE a.x = b.x AND b.y = c.y

-- case: every join kind
-- reads: a, b, c, d, e, f, g
SELECT * FROM a INNER JOIN b ON a.x = b.x LEFT JOIN c ON c.y = b.y LEFT OUTER JOIN d USING (z)
  CROSS JOIN e NATURAL JOIN f JOIN g

-- case: parenthesised join
-- reads: t1, t2, t3
SELECT * FROM t1, (t2 CROSS JOIN t3)

-- case: same table under two aliases
-- reads: emp
SELECT e.name, m.name FROM emp AS e JOIN emp m ON e.manager = m.id

-- case: subquery in FROM
-- reads: t, u
SELECT * FROM (SELECT * FROM t) AS s JOIN (SELECT * FROM u) AS s2 ON s.a = s2.a

-- case: subquery in WHERE IN
-- reads: t, u
SELECT * FROM t WHERE a IN (SELECT a FROM u)

-- case: correlated EXISTS
-- reads: t, u
SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)

-- case: NOT EXISTS with the same table inside
-- reads: t
SELECT * FROM t AS x WHERE NOT EXISTS (SELECT 1 FROM t AS y WHERE y.a > x.a)

-- case: scalar subquery in the select list
-- reads: t, u
SELECT (SELECT max(b) FROM u WHERE u.a = t.a) FROM t

-- case: subquery in HAVING
-- reads: t, u
SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > (SELECT count(*) FROM u)

-- case: subquery in ORDER BY and LIMIT
-- reads: t, u, w
SELECT * FROM t ORDER BY (SELECT b FROM u WHERE u.a = t.a) LIMIT (SELECT count(*) FROM w)

-- case: subquery in JOIN ON
-- reads: t, u, w
SELECT * FROM t JOIN u ON u.a = (SELECT max(a) FROM w)

-- case: subquery in CASE
-- reads: t, u, w
SELECT CASE WHEN EXISTS (SELECT 1 FROM u) THEN (SELECT a FROM w) ELSE 0 END FROM t

-- case: deeply nested subqueries
-- reads: t1, t2, t3, t4
SELECT * FROM t1 WHERE a IN (SELECT a FROM t2 WHERE b IN (SELECT b FROM t3 WHERE c IN (SELECT c FROM t4)))

-- case: subquery in a function argument and in a window
-- reads: t, u
SELECT coalesce((SELECT 1 FROM u), 0), sum(a) OVER (ORDER BY a) FROM t

-- case: simple CTE
-- reads: t
WITH c AS (SELECT * FROM t) SELECT * FROM c

-- case: CTE referenced from another CTE
-- reads: t, u
WITH c1 AS (SELECT * FROM t), c2 AS (SELECT * FROM c1 JOIN u) SELECT * FROM c2

-- case: recursive CTE
-- reads: edges
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT e.dst FROM edges AS e JOIN r ON e.src = r.n)
SELECT * FROM r

-- case: CTE shadowing a table only inside a subquery
-- reads: t
SELECT * FROM t WHERE x IN (WITH t AS (SELECT 1) SELECT * FROM t)

-- case: CTE shadowing a table at the top, real table in no scope
-- reads: u
WITH t AS (SELECT * FROM u) SELECT * FROM t

-- case: CTE named like a table it reads
-- reads: t
WITH t AS (SELECT * FROM main.t) SELECT * FROM t

-- case: CTE visible in a nested subquery
-- reads: u, w
WITH c AS (SELECT * FROM u) SELECT * FROM w WHERE a IN (SELECT a FROM c)

-- case: UNION, UNION ALL, EXCEPT, INTERSECT
-- reads: a, b, c, d
SELECT x FROM a UNION SELECT x FROM b UNION ALL SELECT x FROM c EXCEPT SELECT x FROM d INTERSECT SELECT 1

-- case: set operation under a CTE
-- reads: a, b
WITH c AS (SELECT x FROM a UNION SELECT x FROM b) SELECT * FROM c

-- case: VALUES is a query with no table
-- reads: -
VALUES (1, 2), (3, 4)

-- case: no FROM at all
-- reads: -
SELECT 1 + 1

-- case: table-valued functions are not tables
-- reads: t
SELECT * FROM t, json_each(t.doc) AS j, generate_series(1, 10), pragma_table_info('t')

-- case: table-valued function in a subquery
-- reads: -
SELECT (SELECT count(*) FROM json_each('[1,2]'))

-- case: INDEXED BY names an index, not a table
-- reads: t
SELECT * FROM t INDEXED BY t_idx WHERE a = 1

-- case: NOT INDEXED
-- reads: t
SELECT * FROM t NOT INDEXED WHERE a = 1

-- case: x IN table
-- reads: t, u
SELECT * FROM t WHERE a IN u

-- case: x NOT IN qualified table
-- reads: t, u
SELECT * FROM t WHERE a NOT IN main.u

-- case: x IN quoted table folds
-- reads: t, u
SELECT * FROM t WHERE a IN "U"

-- case: x IN attached table
-- reads: t, aux.u
SELECT * FROM t WHERE a IN aux.u

-- case: x IN (name) is a column, not a table
-- reads: t
SELECT * FROM t WHERE a IN (b)

-- case: x IN a CTE is not a table
-- reads: t
WITH c AS (SELECT 1) SELECT * FROM t WHERE a IN c

-- case: x IN table inside a subquery and a select list
-- reads: t, u, w
SELECT a IN w FROM t WHERE EXISTS (SELECT 1 FROM t WHERE b IN u)

-- case: x IN an alias still means the table
-- reads: t, u
SELECT * FROM t AS u WHERE a IN u

-- case: all parameter styles
-- reads: t
SELECT * FROM t WHERE a = ? AND b = ?1 AND c = ?23 AND d = :name AND e = @name AND f = $name AND g = :1

-- case: parameter lookalikes inside strings, identifiers and comments stay
-- reads: t
SELECT '?1', "?2" FROM t /* ?3 */ WHERE a = ?4 -- ?5

-- case: comments before the keyword
-- reads: t
-- a leading comment
/* and a block comment */ SELECT * FROM t

-- case: trailing semicolons are one statement
-- reads: t
SELECT * FROM t;;

-- case: lower-case keywords
-- reads: t, u
select * from t where exists (select 1 from u)

-- case: view replaced by its tables
-- views: nested
-- reads: orders, customers
SELECT * FROM v_orders

-- case: nested views, view name in any case
-- views: nested
-- reads: orders, customers, refunds
SELECT * FROM V_TOP

-- case: view with no tables
-- views: nested
-- reads: -
SELECT * FROM v_const

-- case: view whose CTE shadows a table
-- views: nested
-- reads: products
SELECT * FROM v_cte

-- case: view in x IN view
-- views: nested
-- reads: t, orders, customers
SELECT * FROM t WHERE a IN v_orders

-- case: CTE shadowing a view
-- views: nested
-- reads: -
WITH v_orders AS (SELECT 1) SELECT * FROM v_orders

-- case: without views a view is a table
-- reads: v_orders
SELECT * FROM v_orders

-- case: cyclic views terminate
-- views: cycle
-- reads: a, base1, base2
SELECT * FROM a

-- case: self-referencing view terminates
-- views: self
-- reads: s
SELECT * FROM s

-- case: unparseable view definition
-- views: broken
-- error: Unanalyzable bad
SELECT * FROM bad

-- case: unparseable view definition that is not used
-- views: broken
-- reads: t
SELECT * FROM t

-- case: INSERT VALUES
-- kind: WRITE
-- reads: t
-- writes: t
INSERT INTO t (a, b) VALUES (1, 2)

-- case: INSERT SELECT
-- kind: WRITE
-- reads: t, u, w
-- writes: t
INSERT INTO main.t SELECT * FROM u WHERE a IN (SELECT a FROM w)

-- case: INSERT into an attached table
-- kind: WRITE
-- reads: aux.t
-- writes: aux.t
INSERT INTO aux.t DEFAULT VALUES

-- case: WITH ... INSERT
-- kind: WRITE
-- reads: t, u
-- writes: t
WITH c AS (SELECT * FROM u) INSERT INTO t SELECT * FROM c

-- case: REPLACE INTO
-- kind: WRITE
-- reads: t, u
-- writes: t
REPLACE INTO t SELECT * FROM u

-- case: INSERT OR REPLACE
-- kind: WRITE
-- reads: t
-- writes: t
INSERT OR REPLACE INTO t VALUES (?1)

-- case: upsert with a subquery
-- kind: WRITE
-- reads: t, u
-- writes: t
INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = (SELECT max(b) FROM u)

-- case: RETURNING with a subquery
-- kind: WRITE
-- reads: t, u
-- writes: t
INSERT INTO t (a) VALUES (1) RETURNING (SELECT count(*) FROM u)

-- case: UPDATE with subqueries
-- kind: WRITE
-- reads: t, u, w
-- writes: t
UPDATE t SET a = (SELECT max(a) FROM u) WHERE b IN (SELECT b FROM w)

-- case: UPDATE OR IGNORE
-- kind: WRITE
-- reads: t
-- writes: t
UPDATE OR IGNORE t SET a = 1

-- case: UPDATE ... FROM
-- kind: WRITE
-- reads: t, u
-- writes: t
UPDATE t SET a = u.a FROM u WHERE t.id = u.id

-- case: DELETE with IN table
-- kind: WRITE
-- reads: t, u
-- writes: t
DELETE FROM t WHERE a IN u

-- case: DELETE with a correlated subquery
-- kind: WRITE
-- reads: t, u
-- writes: t
DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)

-- case: WITH ... DELETE
-- kind: WRITE
-- reads: t, u
-- writes: t
WITH c AS (SELECT a FROM u) DELETE FROM t WHERE a IN (SELECT a FROM c)

-- case: write reads through a view
-- views: nested
-- kind: WRITE
-- reads: t, orders, customers
-- writes: t
INSERT INTO t SELECT * FROM v_orders

-- case: CREATE TABLE
-- kind: DDL
-- reads: -
CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)

-- case: CREATE TABLE WITHOUT ROWID
-- kind: DDL
-- reads: -
CREATE TABLE t (a TEXT PRIMARY KEY, b) WITHOUT ROWID

-- case: CREATE TABLE AS SELECT is DDL and reads nothing watchable
-- kind: DDL
-- reads: -
CREATE TABLE t2 AS SELECT * FROM t

-- case: CREATE VIEW, INDEX, DROP, ALTER
-- kind: DDL
-- multiple: yes
-- reads: -
CREATE VIEW v AS SELECT * FROM t; CREATE UNIQUE INDEX i ON t (a); DROP VIEW v; ALTER TABLE t ADD COLUMN c

-- case: CREATE TRIGGER with a multi-statement body is one statement
-- kind: DDL
-- reads: -
CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); DELETE FROM old_log; END

-- case: transaction control
-- kind: TRANSACTION
-- multiple: yes
-- reads: -
BEGIN IMMEDIATE; SAVEPOINT sp; RELEASE sp; ROLLBACK TO sp; COMMIT; END TRANSACTION; ROLLBACK

-- case: SAVEPOINT alone
-- kind: TRANSACTION
-- reads: -
SAVEPOINT x

-- case: other statements
-- kind: OTHER
-- multiple: yes
-- reads: -
PRAGMA foreign_keys = ON; VACUUM; ATTACH 'x.db' AS aux; DETACH aux; ANALYZE; REINDEX; EXPLAIN SELECT * FROM t

-- case: EXPLAIN QUERY PLAN
-- kind: OTHER
-- reads: -
EXPLAIN QUERY PLAN SELECT * FROM t

-- case: script of queries stays a query
-- kind: QUERY
-- multiple: yes
-- reads: t, u
SELECT * FROM t; SELECT * FROM u

-- case: script with a write is a write
-- kind: WRITE
-- multiple: yes
-- reads: t, u
-- writes: u
BEGIN; SELECT * FROM t; INSERT INTO u VALUES (1); COMMIT

-- case: script with DDL is DDL
-- kind: DDL
-- multiple: yes
-- reads: u
-- writes: u
CREATE TABLE t (a); DELETE FROM u

-- case: misspelt keywords
-- error: Unanalyzable SELEC
SELEC * FRM t

-- case: incomplete FROM
-- error: Unanalyzable could not parse
SELECT * FROM

-- case: trailing garbage
-- error: Unanalyzable could not parse
SELECT * FROM t garbage garbage

-- case: garbage
-- error: Unanalyzable
%%% ??? !!!

-- case: empty text
-- error: Unanalyzable no statement

-- case: only a comment
-- error: Unanalyzable no statement
-- nothing here

-- case: parenthesised select is not SQLite
-- error: Unanalyzable
(SELECT 1)

-- case: three-part table name
-- error: Unanalyzable name parts
SELECT * FROM a.b.c

-- case: WITH ... REPLACE is not understood by sqlglot
-- error: Unanalyzable could not parse
WITH c AS (SELECT 1) REPLACE INTO t SELECT * FROM c

-- case: one bad statement spoils a script
-- error: Unanalyzable SELEC
SELECT * FROM t; SELEC * FRM u

-- case: CTE names match case-insensitively
-- reads: u
WITH "C" AS (SELECT * FROM u) SELECT * FROM c

-- case: qualified name is never a CTE
-- reads: c, u
WITH c AS (SELECT * FROM u) SELECT * FROM main.c, c

-- case: CTE aliased in FROM
-- reads: u
WITH c AS (SELECT * FROM u) SELECT * FROM c AS x JOIN c AS y ON x.a = y.a

-- case: table aliased with a CTE's name is still the table
-- reads: t, u
WITH c AS (SELECT * FROM u) SELECT * FROM t AS c

-- case: two tables sharing an alias
-- reads: t, u
SELECT * FROM t AS a, u AS a

-- case: forward reference to a later CTE is kept as a spare name
-- reads: c, u
WITH d AS (SELECT * FROM c), c AS (SELECT * FROM u) SELECT * FROM d

-- case: CTE used only in RETURNING is kept as a spare name
-- kind: WRITE
-- reads: t, u, c
-- writes: t
WITH c AS (SELECT * FROM u) INSERT INTO t SELECT * FROM c RETURNING (SELECT count(*) FROM c)
