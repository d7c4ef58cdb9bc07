package cluster

import (
	"reflect"
	"testing"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// TestMemberConversion checks that wireMember and storeMember carry every field both ways,
// and fails when either type gains a field, so that a new API field is mapped (or left out of
// the replicated record) on purpose rather than dropped by accident.
func TestMemberConversion(t *testing.T) {
	w := wire.Member{Name: "m1", MemberAddr: "10.0.0.1:7001", ClientURL: "https://m1", DN: "CN=m1", Async: true}
	s := store.Member{Name: "m1", MemberAddr: "10.0.0.1:7001", ClientURL: "https://m1", DN: "CN=m1", Async: true}
	if got := storeMember(w); !reflect.DeepEqual(got, s) {
		t.Errorf("storeMember(%+v) = %+v, want %+v", w, got, s)
	}
	if got := wireMember(s); !reflect.DeepEqual(got, w) {
		t.Errorf("wireMember(%+v) = %+v, want %+v", s, got, w)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[wire.Member](), reflect.TypeFor[store.Member]()} {
		if n := typ.NumField(); n != 5 {
			t.Errorf("%s has %d fields, the conversions map 5: update wireMember and storeMember", typ, n)
		}
	}
}
