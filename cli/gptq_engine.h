// Where GPTQ runs for the commands that quantize: the GPU where one is present (CUDA builds),
// else the CPU. The cli is the one floor that knows both.
#pragma once

namespace pgolf {
class GptqEngine;
}

namespace pgolf::cli {

const GptqEngine* gptq_engine();  // null: the CPU engine

}  // namespace pgolf::cli
