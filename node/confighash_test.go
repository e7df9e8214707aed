package node

import "testing"

// TestDigestLeavesOutTimestamps: an entity's digest does not depend on its
// top-level created_at and updated_at (a DB-less node stamps them when it
// loads its file, as Kong's process_auto_fields does), and depends on
// everything else, a nested "created_at" or one inside a string included.
func TestDigestLeavesOutTimestamps(t *testing.T) {
	base := `{"created_at":1700000000,"host":"a.test","id":"x","updated_at":1700000000}`
	for _, tc := range []struct {
		name, doc string
		same      bool
	}{
		{"other times", `{"created_at":1800000000,"host":"a.test","id":"x","updated_at":1800000001}`, true},
		{"milliseconds", `{"created_at":1800000000.123,"host":"a.test","id":"x","updated_at":1.8e9}`, true},
		{"blanks", `{"created_at": 5 ,"host":"a.test","id":"x","updated_at" : 6}`, false}, // the bytes around differ
		{"other host", `{"created_at":1700000000,"host":"b.test","id":"x","updated_at":1700000000}`, false},
		{"nested created_at", `{"config":{"created_at":1},"created_at":1700000000,"host":"a.test","id":"x","updated_at":1700000000}`, false},
		{"in a string", `{"created_at":1700000000,"host":"a.test\",\"created_at\":2","id":"x","updated_at":1700000000}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := digestEntity("services", []byte(tc.doc)) == digestEntity("services", []byte(base))
			if got != tc.same {
				t.Errorf("got same digest %v, want %v", got, tc.same)
			}
		})
	}
	t.Run("nested values differ", func(t *testing.T) {
		a := `{"config":{"created_at":1},"created_at":1,"id":"x"}`
		b := `{"config":{"created_at":2},"created_at":1,"id":"x"}`
		if digestEntity("plugins", []byte(a)) == digestEntity("plugins", []byte(b)) {
			t.Error("got the same digest for different nested values, want two")
		}
	})
	t.Run("not an object", func(t *testing.T) {
		for _, doc := range []string{``, `"created_at"`, `[1,"created_at",2]`, `{"created_at":`, `{"created_at":"x"}`} {
			_ = digestEntity("services", []byte(doc)) // must not panic
		}
	})
}

// stringEnd finds the quote closing a string, past escaped quotes and
// backslashes, as a byte-by-byte scan does.
func TestStringEnd(t *testing.T) {
	byteByByte := func(doc []byte, from int) int {
		for i := from; i < len(doc); i++ {
			switch doc[i] {
			case '"':
				return i
			case '\\':
				i++
			}
		}
		return len(doc)
	}
	for _, doc := range []string{`a"`, `"`, `a\"b"`, `a\\"b"`, `a\\\"b"`, `a\\\\"`, `\`, `a\`, `\\`, `abc`, `x\"`, `\"\"\\"`, `"\\"`} {
		t.Run(doc, func(t *testing.T) {
			if got, want := stringEnd([]byte(doc), 0), byteByByte([]byte(doc), 0); got != want {
				t.Errorf("got %d, want %d", got, want)
			}
			if got, want := stringEnd([]byte(`\`+doc), 1), byteByByte([]byte(`\`+doc), 1); got != want {
				t.Errorf("after a backslash outside the string: got %d, want %d", got, want)
			}
		})
	}
}
