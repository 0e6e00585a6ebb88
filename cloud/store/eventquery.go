package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
)

// Cond is a condition on one column of an event log, made by Eq, In,
// NotIn, AtLeast and Below, or several joined by AnyOf and AllOf. Domain packages
// say what they want with these; the SQL stays here.
type Cond struct {
	col  string
	op   string // "=", "IN", "NOT IN", ">=", "<", "OR", "AND"
	args []any
	any  []Cond
}

func cond(col, op string, args ...any) Cond {
	if err := checkIdent(col); err != nil {
		panic(fmt.Sprintf("BUG: condition on column %q: %v", col, err))
	}
	return Cond{col: col, op: op, args: args}
}

// Eq: col = v.
func Eq(col string, v any) Cond { return cond(col, "=", v) }

// In: col is one of vs (no vs: nothing matches).
func In(col string, vs []string) Cond { return cond(col, "IN", vs) }

// NotIn: col is none of vs.
func NotIn(col string, vs []string) Cond { return cond(col, "NOT IN", vs) }

// AtLeast: col >= v.
func AtLeast(col string, v any) Cond { return cond(col, ">=", v) }

// Below: col < v.
func Below(col string, v any) Cond { return cond(col, "<", v) }

// AnyOf holds when one of cs does.
func AnyOf(cs ...Cond) Cond { return Cond{op: "OR", any: cs} }

// AllOf holds when every one of cs does.
func AllOf(cs ...Cond) Cond { return Cond{op: "AND", any: cs} }

// sql renders the condition with expr naming each column, appending its
// arguments.
func (c Cond) sql(expr func(string) string, args *[]any) string {
	switch c.op {
	case "OR", "AND":
		if len(c.any) == 0 {
			if c.op == "OR" {
				return "0"
			}
			return "1"
		}
		parts := make([]string, len(c.any))
		for i, s := range c.any {
			parts[i] = s.sql(expr, args)
		}
		return "(" + strings.Join(parts, " "+c.op+" ") + ")"
	case "IN", "NOT IN":
		if l, ok := c.args[0].([]string); ok && len(l) == 0 {
			if c.op == "IN" {
				return "0"
			}
			return "1"
		}
		*args = append(*args, groupSet(c.args[0].([]string)))
		return expr(c.col) + " " + c.op + " ?"
	}
	*args = append(*args, c.args[0])
	return expr(c.col) + " " + c.op + " ?"
}

// whereSQL renders conds, all of which must hold, on the table's own
// columns as " WHERE …" ("" without any), appending their arguments.
func whereSQL(conds []Cond, args *[]any) string {
	if len(conds) == 0 {
		return ""
	}
	parts := make([]string, len(conds))
	for i, c := range conds {
		parts[i] = c.sql(func(col string) string { return col }, args)
	}
	return " WHERE " + strings.Join(parts, " AND ")
}

func (c Cond) cols(into map[string]bool) {
	if c.op == "OR" || c.op == "AND" {
		for _, s := range c.any {
			s.cols(into)
		}
		return
	}
	into[c.col] = true
}

// Order is one sort column of a Query.
type Order struct {
	Col  string
	Desc bool
}

// Query selects the current rows of an event log (each key's latest
// event) without reading every row into the process: ClickHouse finds
// the keys, and only the rows of those keys come back.
type Query struct {
	// Fixed are conditions on columns that no event of a key changes
	// (company, project, device, the time an alarm was raised or an order
	// opened): they filter every row before each key's latest is taken.
	Fixed []Cond
	// Where are conditions on each key's latest row.
	Where []Cond
	// OrderBy orders the latest rows; the key breaks ties.
	OrderBy []Order
	// OnePer keeps, of the rows with equal values in these columns, only
	// the first in OrderBy's order (e.g. the latest cleared alarm of each
	// device and rule).
	OnePer []string
	// Among, when not nil, keeps only these keys (any number of them:
	// they travel with the query as an external table, not in its text,
	// which ClickHouse 18.16 caps at 50,000 elements). Not nil and empty:
	// nothing matches.
	Among []string
	// Limit is the most keys returned; required (no unbounded reads).
	Limit int
}

// amongTable is the external table a query restricted to keys (Among)
// reads them from.
const amongTable = "among_keys"

// among attaches keys to ctx as the external table amongTable and returns
// the condition on the log's key that reads it.
func (l *EventLog[R]) among(ctx context.Context, keys []string) (context.Context, string, error) {
	set, err := ext.NewTable(amongTable, ext.Column("k", "String"))
	if err != nil {
		return nil, "", fmt.Errorf("cannot send %d keys with a query of %s: %w", len(keys), l.table, err)
	}
	for _, k := range keys {
		if err := set.Append(k); err != nil {
			return nil, "", fmt.Errorf("cannot send key %q with a query of %s: %w", k, l.table, err)
		}
	}
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(set)), l.key + " IN (SELECT k FROM " + amongTable + ")", nil
}

// andWhere adds the condition c to a WHERE clause made by whereSQL.
func andWhere(where, c string) string {
	if where == "" {
		return " WHERE " + c
	}
	return where + " AND " + c
}

// Current returns the latest row of each key that q selects, in q's
// order. The keys are found first (ClickHouse reads only the columns q
// names), then their rows, in batches (PREWHERE on the key: only the
// granules holding those keys are read whole; the keys travel as an
// external table: a literal set of thousands of strings takes ClickHouse
// 18.16 seconds to analyse under load).
func (l *EventLog[R]) Current(ctx context.Context, q Query) ([]R, error) {
	keys, err := l.CurrentKeys(ctx, q)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	order := make([]string, 0, len(q.OrderBy)+1)
	for _, o := range q.OrderBy {
		order = append(order, orderSQL(o.Col, o.Desc))
	}
	order = append(order, l.key)
	var out []R
	for start := 0; start < len(keys); start += keyBatch {
		batch := keys[start:min(start+keyBatch, len(keys))]
		// Fixed holds on every row of a key q selected: it may prune (a
		// time bound skips partitions).
		var args []any
		where := whereSQL(q.Fixed, &args)
		bctx, in, err := l.among(ctx, batch)
		if err != nil {
			return nil, err
		}
		rows, err := l.query(bctx, "SELECT "+l.list+" FROM (SELECT "+l.list+" FROM "+l.table+" PREWHERE "+in+
			where+" ORDER BY "+l.key+", n DESC LIMIT 1 BY "+l.key+") ORDER BY "+strings.Join(order, ", "), 2, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// keyBatch is how many keys one read of rows names.
const keyBatch = 5000

// CurrentKeys returns the keys q selects, in q's order.
func (l *EventLog[R]) CurrentKeys(ctx context.Context, q Query) ([]string, error) {
	if q.Limit <= 0 {
		panic("BUG: event log query without a limit")
	}
	need := map[string]bool{}
	for _, c := range q.Where {
		c.cols(need)
	}
	for _, o := range q.OrderBy {
		need[cond(o.Col, "").col] = true
	}
	for _, c := range q.OnePer {
		need[cond(c, "").col] = true
	}
	cur := func(col string) string { return "cur_" + col }
	var args []any
	sel := []string{l.key + " AS cur_key"}
	for col := range need {
		sel = append(sel, "argMax("+col+", n) AS "+cur(col))
	}
	where := whereSQL(q.Fixed, &args)
	if q.Among != nil {
		if len(q.Among) == 0 {
			return nil, nil
		}
		var in string
		var err error
		if ctx, in, err = l.among(ctx, q.Among); err != nil {
			return nil, err
		}
		where = andWhere(where, in)
	}
	having := ""
	if len(q.Where) > 0 {
		parts := make([]string, len(q.Where))
		for i, c := range q.Where {
			parts[i] = c.sql(cur, &args)
		}
		having = " HAVING " + strings.Join(parts, " AND ")
	}
	var order []string
	for _, c := range q.OnePer {
		order = append(order, cur(c))
	}
	for _, o := range q.OrderBy {
		order = append(order, orderSQL(cur(o.Col), o.Desc))
	}
	order = append(order, "cur_key")
	s := "SELECT cur_key FROM (SELECT " + strings.Join(sel, ", ") + " FROM " + l.table + where + " GROUP BY " + l.key + having +
		") ORDER BY " + strings.Join(order, ", ")
	if len(q.OnePer) > 0 {
		per := make([]string, len(q.OnePer))
		for i, c := range q.OnePer {
			per[i] = cur(c)
		}
		s += " LIMIT 1 BY " + strings.Join(per, ", ")
	}
	s += fmt.Sprintf(" LIMIT %d", q.Limit)
	ctx, cancel := context.WithTimeout(ctx, 4*l.timeout)
	defer cancel()
	var keys []struct {
		Key string `ch:"cur_key"`
	}
	if err := l.conn.Select(ctx, &keys, s, args...); err != nil {
		return nil, fmt.Errorf("cannot find keys in %s: %w", l.table, err)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Key
	}
	return out, nil
}

func orderSQL(col string, desc bool) string {
	if desc {
		return col + " DESC"
	}
	return col
}

// EventsOf returns every event of the given keys, each once, by key and
// n; conds, when given, must hold on every event of those keys (a time
// bound that skips partitions, e.g. AtLeast("at", t)).
func (l *EventLog[R]) EventsOf(ctx context.Context, keys []string, conds ...Cond) ([]R, error) {
	var out []R
	for start := 0; start < len(keys); start += keyBatch {
		batch := keys[start:min(start+keyBatch, len(keys))]
		var args []any
		where := whereSQL(conds, &args)
		bctx, in, err := l.among(ctx, batch)
		if err != nil {
			return nil, err
		}
		rows, err := l.selectEvents(bctx, "PREWHERE "+in+where, l.key+", n", 0, 2, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// MaxSeq returns the highest seq stored (0 when the log is empty): the
// feed's sequence goes on after it.
func (l *EventLog[R]) MaxSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	var out []struct {
		Seq uint64 `ch:"m"`
	}
	if err := l.conn.Select(ctx, &out, "SELECT max(seq) AS m FROM "+l.table); err != nil {
		return 0, fmt.Errorf("cannot read the latest sequence of %s: %w", l.table, err)
	}
	if len(out) == 0 {
		return 0, nil
	}
	return out[0].Seq, nil
}

// Newest returns the highest value of col (an Int64 column no event of a
// key changes, such as the time an alarm was raised) among the rows that
// match every cond; 0 when none does.
func (l *EventLog[R]) Newest(ctx context.Context, col string, conds ...Cond) (int64, error) {
	return l.newest(ctx, col, nil, conds)
}

// NewestAmong is Newest among the rows of keys (any number, as Query.Among).
func (l *EventLog[R]) NewestAmong(ctx context.Context, col string, keys []string, conds ...Cond) (int64, error) {
	if keys == nil {
		keys = []string{}
	}
	return l.newest(ctx, col, keys, conds)
}

func (l *EventLog[R]) newest(ctx context.Context, col string, keys []string, conds []Cond) (int64, error) {
	var args []any
	where := whereSQL(conds, &args)
	if keys != nil {
		if len(keys) == 0 {
			return 0, nil
		}
		var in string
		var err error
		if ctx, in, err = l.among(ctx, keys); err != nil {
			return 0, err
		}
		where = andWhere(where, in)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*l.timeout)
	defer cancel()
	var out []struct {
		V int64 `ch:"v"`
	}
	if err := l.conn.Select(ctx, &out, "SELECT max("+cond(col, "").col+") AS v FROM "+l.table+where, args...); err != nil {
		return 0, fmt.Errorf("cannot read the newest %s of %s: %w", col, l.table, err)
	}
	if len(out) == 0 {
		return 0, nil
	}
	return out[0].V, nil
}
