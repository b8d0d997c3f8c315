#pragma once
// INPUT arguments -> sources, as ssseg.label.inputs.expand_inputs (without globs and streams): videos, image
// folders, single images (grouped by folder) and list files, in order, each keyed by a unique safe name.

#include <string>
#include <vector>

#include "ssseg/records.hpp"

namespace ssseg {

std::vector<SourceInfo> expand_inputs(const std::vector<std::string>& inputs);

}  // namespace ssseg
