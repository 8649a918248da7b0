#include "cli/gptq_engine.h"

namespace pgolf::cli {

const GptqEngine* gptq_engine() { return nullptr; }

}  // namespace pgolf::cli
