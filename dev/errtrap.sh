# Sourced by every setup and test script of the project (bash, `set -euo pipefail`).
#
# A command that fails ends the script, and this trap says which one: the file and
# line, the command as written, its exit status, the function stack, and the last
# lines of the log of the step that was running (the script sets STEP_LOG to that
# log before a step whose output goes to a file). A failure can never again end a
# script without a word. A command substitution that fails is reported twice: the
# command inside it, then the line that used it.
set -o errtrace
STEP_LOG=${STEP_LOG:-}

errtrap_report() {
  local status=$1 line=$2 cmd=$3 src=${BASH_SOURCE[1]:-$0} i stack=""
  for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
    stack+=" ${FUNCNAME[$i]}(${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]})"
  done
  {
    echo "ERROR: ${src##*/}:$line: \`$cmd\` exited with status $status"
    [ -z "$stack" ] || echo "       in:$stack"
    if [ -n "$STEP_LOG" ] && [ -s "$STEP_LOG" ]; then
      echo "---- last lines of $STEP_LOG"
      tail -n 30 "$STEP_LOG"
    fi
  } >&2
}
trap 'errtrap_report $? $LINENO "$BASH_COMMAND"' ERR
