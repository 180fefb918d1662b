package main

import (
	"fmt"
	"math"
	"strings"
)

// integer is any count the output prints.
type integer interface {
	~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64
}

// plural is n and the noun for it: "1 problem", "2 problems". many is the
// plural form (most nouns: one + "s").
func plural[T integer](n T, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ratioText says how the bytes stored compare with the original ones:
// "3.2x smaller" from twice as small on, "4% larger" or "12% smaller"
// nearer to equal (where "1.0x" would say nothing), "the same size" within
// half a percent.
func ratioText(original, stored uint64) string {
	switch {
	case original == 0 && stored == 0:
		return "nothing stored"
	case stored == 0:
		return "nothing new stored"
	case original == 0:
		return "an empty file"
	}
	r := float64(original) / float64(stored)
	switch {
	case r >= 2:
		return fmt.Sprintf("%.1fx smaller", r)
	case r <= 0.5:
		return fmt.Sprintf("%.1fx larger", 1/r)
	}
	pct := math.Round((float64(stored) - float64(original)) / float64(original) * 100)
	switch {
	case pct > 0:
		return fmt.Sprintf("%.0f%% larger", pct)
	case pct < 0:
		return fmt.Sprintf("%.0f%% smaller", -pct)
	}
	return "the same size"
}

// andList joins "1", "2", "3" as "1, 2 and 3".
func andList(s []string) string { return joinList(s, "and") }

// orList joins "a", "b" as "a or b".
func orList(s []string) string { return joinList(s, "or") }

func joinList(s []string, conj string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " " + conj + " " + s[len(s)-1]
}
