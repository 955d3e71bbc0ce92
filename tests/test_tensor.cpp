// Tensor geometry: views share storage, contiguous() copies in logical order, errors name shapes.
#include "support.hpp"

using namespace blip2;
using blip2::testing::tensor;

TEST_CASE("creation and metadata") {
  auto t = Tensor<float>::zeros({2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.dim() == 2);
  CHECK(t.size(-1) == 3);
  CHECK(t.is_contiguous());
  CHECK(Tensor<float>::full({2}, 3.5f).to_vector() == std::vector<float>{3.5f, 3.5f});
  CHECK(Tensor<double>::scalar(2.0).item() == 2.0);
  CHECK(arange<std::int64_t>(4).to_vector() == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK_THROWS_AS(Tensor<float>().shape(), Error);
  CHECK_THROWS_AS(Tensor<float>::from_vector({2, 2}, {1, 2, 3}), ShapeError);
}

TEST_CASE("views share storage and read in logical order") {
  auto t = tensor<float>({2, 3}, {0, 1, 2, 3, 4, 5});
  auto tt = t.transpose(0, 1);
  CHECK(tt.shape() == Shape{3, 2});
  CHECK(!tt.is_contiguous());
  CHECK(tt.to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(tt.contiguous().is_contiguous());
  auto s = t.slice(1, 1, 3);
  CHECK(s.to_vector() == std::vector<float>{1, 2, 4, 5});
  CHECK(t.slice(1, 0, 3, 2).to_vector() == std::vector<float>{0, 2, 3, 5});
  CHECK(t.slice(0, -1, 2).to_vector() == std::vector<float>{3, 4, 5});
  s.data()[0] = 42;  // writes through to the base
  CHECK(t.to_vector()[1] == 42);
  auto e = tensor<float>({3, 1}, {1, 2, 3}).expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides()[0] == 0);
  CHECK(e.to_vector()[5] == 2);
  CHECK(t.reshape({3, -1}).shape() == Shape{3, 2});
  CHECK(t.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(t.unsqueeze(0).squeeze(0).shape() == Shape{2, 3});
  auto p = Tensor<float>::zeros({2, 3, 4}).permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(tt.reshape({6}).to_vector() == std::vector<float>{0, 3, 42, 4, 2, 5});
}

TEST_CASE("concat and split") {
  auto a = tensor<float>({2, 1}, {1, 2});
  auto b = tensor<float>({2, 2}, {3, 4, 5, 6});
  auto c = concat<float, cpu>({a, b}, 1);
  CHECK(c.to_vector() == std::vector<float>{1, 3, 4, 2, 5, 6});
  auto parts = split(c, {1, 2}, 1);
  CHECK(parts[1].to_vector() == std::vector<float>{3, 4, 5, 6});
  CHECK_THROWS_AS(split(c, {1, 1}, 1), ShapeError);
  CHECK_THROWS_AS((concat<float, cpu>({a, tensor<float>({3, 1}, {1, 2, 3})}, 1)), ShapeError);
}

TEST_CASE("shape errors name the op and the shapes") {
  auto t = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_WITH_AS(t.reshape({4, 2}), doctest::Contains("[2,3]"), ShapeError);
  CHECK_THROWS_WITH_AS(t.expand({3, 3}), doctest::Contains("expand"), ShapeError);
  CHECK_THROWS_WITH_AS(t.permute({0, 0}), doctest::Contains("repeated"), ShapeError);
  CHECK_THROWS_AS(t.squeeze(0), ShapeError);
  CHECK_THROWS_AS(t.size(2), ValueError);
  CHECK_THROWS_WITH_AS(add(t, Tensor<float>::zeros({4})), doctest::Contains("[2,3] and [4]"), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(t, Tensor<float>::zeros({2, 3})), doctest::Contains("[2,3] x [2,3]"), ShapeError);
  CHECK_THROWS_AS(t.item(), ShapeError);
}
