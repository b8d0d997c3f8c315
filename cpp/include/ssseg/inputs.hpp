#pragma once
// INPUT arguments -> sources, as ssseg.label.inputs.expand_inputs (without globs and streams): videos, image
// folders (with `recursive`, their videos and subfolders too), single images (grouped by folder) and list
// files, in order, each keyed by the naming rule (names.hpp); `recorded` sources keep their keys.

#include <map>
#include <string>
#include <vector>

#include "ssseg/records.hpp"

namespace ssseg {

std::vector<SourceInfo> expand_inputs(const std::vector<std::string>& inputs, bool recursive = false,
                                      const std::map<std::string, std::string>& recorded = {});

}  // namespace ssseg
