package recompress

import (
	"bytes"
	"errors"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// A recipe whose member parameters do not decode is an ErrRecipe that
// keeps the parameter record's error as its cause.
func TestRecipeBadParamsKeepsCause(t *testing.T) {
	p := deflate.GzipParams(6, deflate.RsyncOff)
	rc := &Recipe{
		Streams: []Stream{{Kind: KindRaw, Len: 5}},
		Root: &Gzip{
			Verbatim: -1,
			Members:  []Member{{Header: make([]byte, 10), Mode: ModeExact, Params: p, ContentLen: 5, Exact: 20}},
			Content:  &Copy{Stream: 0, Len: 5},
		},
		Size: 10 + 20 + 8,
	}
	b, err := rc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, rec)
	if i < 0 {
		t.Fatal("parameter record not found in the recipe")
	}
	b[i]++ // an unknown record version
	err = new(Recipe).UnmarshalBinary(b)
	if !errors.Is(err, ErrRecipe) || !errors.Is(err, deflate.ErrParams) {
		t.Fatalf("got %v, want an ErrRecipe wrapping deflate.ErrParams", err)
	}
}
