// Subcommands of the `textscale` program. Each takes the arguments after its name and returns
// the process exit code; errors are thrown and reported by main.
#pragma once

#include <string>
#include <vector>

namespace textscale::cli {

int preprocess_command(const std::vector<std::string>& arguments);
int inspect_command(const std::vector<std::string>& arguments);
int train_command(const std::vector<std::string>& arguments);
int evaluate_command(const std::vector<std::string>& arguments);
int predict_command(const std::vector<std::string>& arguments);
int bench_command(const std::vector<std::string>& arguments);
int models_command(const std::vector<std::string>& arguments);
int tokens_command(const std::vector<std::string>& arguments);
int serve_command(const std::vector<std::string>& arguments);

// Thrown for a command line that cannot be understood (exit code 2, usage hint).
struct UsageError {
  std::string message;
};

}  // namespace textscale::cli
