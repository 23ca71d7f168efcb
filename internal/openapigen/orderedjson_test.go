package main

import "testing"

// Keys are sorted, except inside an example (a delivered body's order is part of the contract);
// a property called "example" is a name, sorted like any other.
func TestDocumentJSONSortsKeysButKeepsExamplesInOrder(t *testing.T) {
	in := `{"type":"object","properties":{"zeta":{"type":"string"},"example":{"type":"object","example":{"b":1,"a":"<&>"}}},` +
		`"example":{"event":"x","timestamp":"t","data":{"z":1,"a":2}},"examples":{"one":{"value":{"z":1,"a":2},"summary":"s"}}}`
	want := `{
  "example": {
    "event": "x",
    "timestamp": "t",
    "data": {
      "z": 1,
      "a": 2
    }
  },
  "examples": {
    "one": {
      "summary": "s",
      "value": {
        "z": 1,
        "a": 2
      }
    }
  },
  "properties": {
    "example": {
      "example": {
        "b": 1,
        "a": "<&>"
      },
      "type": "object"
    },
    "zeta": {
      "type": "string"
    }
  },
  "type": "object"
}
`
	got, err := documentJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
