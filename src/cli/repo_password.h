// The repository password, for `kvbackup repo` and `backup create --copy-data`:
// from --password-file (a file others can read is warned about: path and mode,
// never the content), else $KVBACKUP_REPO_PASSWORD, else a prompt on the
// terminal (only when standard input is one). Never from argv.
#pragma once

#include "common/error.h"
#include "common/secret.h"

#include <string>

namespace kvb::cli {

// `confirm`: ask twice at a prompt (repo init).
Result<Secret> repository_password(const std::string& password_file, bool confirm = false);

}  // namespace kvb::cli
