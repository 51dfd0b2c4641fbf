"""Amazon States Language: paths, intrinsic functions, choice rules, validation, interpreter."""
