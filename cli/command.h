// Each subcommand is one file in cli/ with one entry point; main.cpp dispatches by name.
// An entry point parses its own flags (cxxopts), calls the libraries and prints.
// It throws InputError for bad input (exit 2); any other exception is an internal failure (exit 1).
#pragma once

namespace pgolf::cli {

int compress_main(int argc, char** argv);
int decompress_main(int argc, char** argv);
int inspect_main(int argc, char** argv);
int eval_main(int argc, char** argv);
int data_main(int argc, char** argv);
int train_main(int argc, char** argv);
int bench_main(int argc, char** argv);
int sensitivity_main(int argc, char** argv);
int calibrate_main(int argc, char** argv);
int export_decoder_main(int argc, char** argv);
int codecs_main(int argc, char** argv);

}  // namespace pgolf::cli
