package history

import "errors"

// ErrInvalidOp is returned by Check when an operation cannot be checked: an unknown Kind, a
// negative client or time, or a known outcome that returned before it was called. It points
// at a bug in the harness, not in the store.
var ErrInvalidOp = errors.New("history: invalid operation")
