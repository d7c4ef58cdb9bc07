package faultnet

import (
	"strconv"
	"time"
)

// AnySource is the source key that makes a rule apply to every dialer of a proxy.
const AnySource = "*"

// Direction says which way bytes flow on a proxied connection, seen from the dialer. The
// values are bits so that a rule can hold both directions at once.
type Direction int

// Directions. The zero Direction names no direction at all.
const (
	ToTarget   Direction = 1 << iota // to-target
	FromTarget                       // from-target

	Both = ToTarget | FromTarget // both
)

// String returns the line comment of the constant, in the style of stringer -linecomment.
func (d Direction) String() string {
	switch d {
	case ToTarget:
		return "to-target"
	case FromTarget:
		return "from-target"
	case Both:
		return "both"
	default:
		return "Direction(" + strconv.Itoa(int(d)) + ")"
	}
}

// rule is the fault set for one source. The zero rule forwards everything untouched.
type rule struct {
	cut   bool
	drop  Direction
	delay time.Duration
}

// merge combines a source's own rule with the AnySource rule. A fault in either applies;
// delays do not add up, the longer one wins, so that setting the same delay on a source and
// on AnySource does not double it.
func (r rule) merge(o rule) rule {
	return rule{
		cut:   r.cut || o.cut,
		drop:  r.drop | o.drop,
		delay: max(r.delay, o.delay),
	}
}
