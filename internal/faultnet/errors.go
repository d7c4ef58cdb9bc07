package faultnet

import "errors"

// ErrUnknownMember is returned by Net.Isolate, Net.CutLink and Net.OneWay when a name was
// never added with Net.Add.
var ErrUnknownMember = errors.New("faultnet: unknown member")

// ErrMemberExists is returned by Net.Add when the name or the source IP is already taken:
// rules are keyed by source IP, so two members sharing one could not be told apart.
var ErrMemberExists = errors.New("faultnet: member already added")

// ErrClosed is returned by Net.Add after Net.Close.
var ErrClosed = errors.New("faultnet: net closed")
