# Sourced by the scripts for their arguments.
#   script_help "$@"        -h or --help among the arguments: prints the calling script's
#                           opening comment on standard output and exits 0.
#   refuse USAGE [ARG]      one line on standard error naming what is refused, status 2.
script_help() {
  local a
  for a in "$@"; do
    case "$a" in
      -h|--help) sed -n '2,/^[^#]/ s/^# \{0,1\}//p' "$0"; exit 0 ;;
    esac
  done
}
refuse() {
  echo "$(basename "$0"): ${2:+'$2' is not understood; }usage: $1 (see $(basename "$0") --help)" >&2
  exit 2
}
