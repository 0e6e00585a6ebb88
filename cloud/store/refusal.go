package store

import (
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// refusalCauses are the ClickHouse error codes that mean the server refused
// the inserted data itself: inserting the same rows again fails the same
// way, so waiting does not help. Each maps to the cause recorded with the
// quarantined rows and counted in metrics.
var refusalCauses = map[int32]string{
	6:   "cannot_parse", // CANNOT_PARSE_TEXT
	27:  "cannot_parse", // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  "cannot_parse", // CANNOT_PARSE_DATE
	41:  "cannot_parse", // CANNOT_PARSE_DATETIME
	72:  "cannot_parse", // CANNOT_PARSE_NUMBER
	53:  "type_mismatch",
	69:  "argument_out_of_bound",
	70:  "cannot_convert_type",
	117: "incorrect_data",
	131: "too_large_string",
	153: "illegal_division",
	321: "value_out_of_type_range", // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
	395: "check_failed",            // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: a throwIf in a column default or view
	407: "decimal_overflow",
	469: "constraint_violated", // VIOLATED_CONSTRAINT (CHECK constraints, 19.x on)
}

// Refused reports whether err is ClickHouse refusing the data of an insert
// (a permanent error: the same rows fail again), and the cause to record.
// Anything else, the server or the network being down, a timeout, too many
// parts, a read-only replica, a missing table or an error this list does
// not know, is transient: retry the insert later, unchanged.
func Refused(err error) (cause string, ok bool) {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return "", false
	}
	cause, ok = refusalCauses[ex.Code]
	return cause, ok
}
